"""`classcap library serve` as a school runs it, for the tests that talk to it over real HTTP."""

import json
import shutil
import socket
import subprocess
import time

import pytest

from conftest import CLASSCAP, storage_env

PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# A page that is being replaced (a form was just posted) may hand back an element that is gone
# by the time it is read; that is "not yet", not a failure.
PAGE_CHANGING = ("StaleElementReferenceException", "NoSuchElementException")


def wait_for(check, timeout=60, what="the page"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception as e:
            if type(e).__name__ not in PAGE_CHANGING:
                raise
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def served_with():
    """Extra (arguments, environment) for `classcap library serve`; a test module overrides it."""
    return [], {}


@pytest.fixture
def served(seaweed, bucket, s3, tmp_path, served_with):
    """`classcap library serve` over `bucket`, holding an 8 s recording taught by teacher-a, with
    accounts for teachers a and b and administrator c; yields (url, recording result, server process)."""
    from fixtures.classroom import Classroom, ClassroomSpec, write_mp4

    clip = tmp_path / "lesson.mp4"
    write_mp4(Classroom(ClassroomSpec(seed=3, duration_s=8.0)), clip, with_audio=False)
    env = storage_env(seaweed, CLASSCAP_BUCKET=bucket, CLASSCAP_LIBRARY_DB=f"sqlite:///{tmp_path / 'library.db'}")
    made = subprocess.run([*CLASSCAP, "process", str(clip), "--to", f"s3://{bucket}", "--staff", "teacher-a", "--room", "lab-2"],
                          env=env, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    for uid, name, role in (("teacher-a", "Ann Archer", "teacher"), ("teacher-b", "Ben Baker", "teacher"),
                            ("admin-c", "Cat Cole", "admin")):
        added = subprocess.run([*CLASSCAP, "library", "user", "add", "--id", uid, "--name", name, "--email", f"{uid}@school.example",
                                "--role", role], input=PASSWORD + "\n", env=env, capture_output=True, text=True, timeout=60)
        assert added.returncode == 0, added.stderr
    port = free_port()
    log = tmp_path / "library.log"  # the server's messages (a pipe nobody reads would fill and stall it)
    extra_args, extra_env = served_with
    server = subprocess.Popen([*CLASSCAP, "library", "serve", "--port", str(port), *extra_args], env={**env, **extra_env},
                              stdout=subprocess.DEVNULL, stderr=log.open("w"))
    try:
        def listening():
            assert server.poll() is None, log.read_text()
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_for(listening, what="the library to listen")
        yield f"http://127.0.0.1:{port}", json.loads(made.stdout.strip().splitlines()[-1]), server
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "Debian's chromium and chromium-driver are missing: .ci/run installs them"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,1400",
                 "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(flag)
    chrome = webdriver.Chrome(service=Service(driver), options=options)
    yield chrome
    chrome.quit()
