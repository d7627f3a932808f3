"""A real PostgreSQL server from Debian's packages, started in a temporary directory for the
tests and stopped after them. Under root (as in CI) it runs as the `postgres` account the
package creates, since PostgreSQL refuses to run as root."""

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid


def _bindir() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    if initdb:
        return os.path.dirname(initdb)
    raise RuntimeError("PostgreSQL is not installed: install Debian's postgresql package (.ci/run does)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """`with PostgresServer() as pg: url = pg.new_database()`: each call gives a fresh, empty
    database on the one server, as a SQLAlchemy URL."""

    def __init__(self):
        self.bindir = _bindir()
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix="classcap-pg-")
        self.data = os.path.join(self.dir, "data")
        self.process = None
        self.as_user = {}
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.dir, account.pw_uid, account.pw_gid)
            self.as_user = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}

    def _run(self, *args):
        done = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=self.dir, **self.as_user)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stderr.strip() or done.stdout.strip()}")

    def __enter__(self):
        self._run(f"{self.bindir}/initdb", "-D", self.data, "-U", "classcap", "-A", "trust", "-E", "UTF8", "--no-locale")
        self.log = open(os.path.join(self.dir, "server.log"), "w")
        self.process = subprocess.Popen(
            [f"{self.bindir}/postgres", "-D", self.data, "-p", str(self.port), "-k", self.dir,
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir, **self.as_user)
        deadline = time.monotonic() + 60
        while True:
            try:
                self._admin("SELECT 1")
                return self
            except Exception:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.__exit__(None, None, None)
                    raise RuntimeError("PostgreSQL did not start: " + open(os.path.join(self.dir, "server.log")).read()[-2000:])
                time.sleep(0.2)

    def _admin(self, sql: str):
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="classcap", dbname="postgres",
                             autocommit=True, connect_timeout=5) as connection:
            connection.execute(sql)

    def new_database(self) -> str:
        name = "t" + uuid.uuid4().hex[:12]
        self._admin(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://classcap@127.0.0.1:{self.port}/{name}"

    def __exit__(self, *exc):
        if self.process is not None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown: do not wait for pooled connections
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)
