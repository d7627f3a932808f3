"""`classcap demo --library`: the demo recording, watched in the library the way a teacher would,
over a real HTTP server."""

import re
import signal
import socket
import subprocess
import time

import httpx
import pytest

from conftest import CLASSCAP, clean_env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_the_demo_opens_the_library_where_its_teacher_signs_in_and_plays_the_recording():
    port = free_port()
    demo = subprocess.Popen([*CLASSCAP, "demo", "--duration", "2", "--library", "--port", str(port)],
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        password = None
        deadline = time.monotonic() + 240
        while password is None:
            assert time.monotonic() < deadline and demo.poll() is None, "the demo never opened the library"
            found = re.search(r"sign in as demo-teacher with the password (\S+)", demo.stderr.readline())
            password = found and found.group(1)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, follow_redirects=True, timeout=10) as web:
            for _ in range(100):  # the server starts a moment after it says where it is
                try:
                    login = web.get("/login")
                    break
                except httpx.ConnectError:
                    time.sleep(0.1)
            token = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)
            mine = web.post("/login", data={"user_id": "demo-teacher", "password": password, "csrf": token})
            assert mine.status_code == 200 and "My recordings" in mine.text
            rid = re.search(r'href="/r/([^"]+)"', mine.text).group(1)
            assert web.get(f"/r/{rid}").status_code == 200
            head = web.get(f"/r/{rid}/video", headers={"Range": "bytes=0-7"})
            assert head.status_code == 206 and head.content[4:8] == b"ftyp", "an MP4 from its first byte"
    finally:
        demo.send_signal(signal.SIGINT)
        demo.wait(timeout=60)
    assert demo.returncode == 0
