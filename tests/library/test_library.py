"""The teachers' library (`classcap library`): sign-in, what each person may see and play, range
requests, sharing, comments, delete and keep, the audit, and a restart. A real SeaweedFS holds a
real recording made by `classcap process --staff`; every test runs on both databases the library
supports: a real SQLite file and a real PostgreSQL server."""

import json
import re
import subprocess

import pytest
from fastapi.testclient import TestClient

from conftest import CLASSCAP, storage_env

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def recorded(seaweed, classroom_clip, tmp_path_factory):
    """A bucket holding teacher-a's recording, one with no owner, and for each database's tests
    one more of teacher-a's to delete and one more with no owner to assign."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=seaweed.endpoint, region_name="us-east-1",
                      aws_access_key_id=seaweed.access_key, aws_secret_access_key=seaweed.secret_key)
    bucket = "library-" + tmp_path_factory.mktemp("b").name.replace("_", "-")[-20:].lower().strip("-")
    s3.create_bucket(Bucket=bucket)
    env = storage_env(seaweed)
    results = {}
    for name, owner in (("teacher-a", "teacher-a"), (None, None), ("doomed-sqlite", "teacher-a"), ("doomed-postgresql", "teacher-a"),
                         ("unowned-sqlite", None), ("unowned-postgresql", None)):
        extra = ["--staff", owner] if owner else []
        done = subprocess.run([*CLASSCAP, "process", str(classroom_clip.path), "--to", f"s3://{bucket}", "--room", "lab-2", *extra],
                              env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    return s3, bucket, results


@pytest.fixture(params=["sqlite", "postgresql"])
def library(request, seaweed, recorded, tmp_path):
    """`library()` builds the app on a fresh database (the same one each call: a restart), with
    teacher-a, teacher-b, admin-c and lead-d; returns (app factory, s3, bucket, results), where
    results["doomed"] and results["unowned"] are this database's recordings to delete and assign."""
    from library.accounts import SignInLimit, add_user
    from library.app import create_app
    from library.db import make_engine, migrate, sessions
    from upload.storage import StorageSettings, make_client

    s3, bucket, results = recorded
    url = f"sqlite:///{tmp_path / 'library.db'}" if request.param == "sqlite" else request.getfixturevalue("postgres").new_database()
    results = {**results, "doomed": results[f"doomed-{request.param}"], "unowned": results[f"unowned-{request.param}"]}
    storage = StorageSettings(endpoint_url=seaweed.endpoint, access_key=seaweed.access_key, secret_key=seaweed.secret_key)
    engine = make_engine(url)
    migrate(engine)
    with sessions(engine).begin() as s:
        for uid, role in (("teacher-a", "teacher"), ("teacher-b", "teacher"), ("admin-c", "admin"), ("lead-d", "lead")):
            add_user(s, uid, uid.replace("-", " ").title(), f"{uid}@school.example", role, PASSWORD)

    def build(**kw):
        fresh = make_engine(url)
        migrate(fresh)
        return create_app(fresh, make_client(storage), storage, bucket, limit=kw.get("limit", SignInLimit()))

    return build, s3, bucket, results


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def sign_in(app, user_id, password=PASSWORD) -> TestClient:
    client = TestClient(app, follow_redirects=False)
    token = csrf_of(client.get("/login").text)
    answer = client.post("/login", data={"user_id": user_id, "password": password, "csrf": token})
    assert answer.status_code == 303, answer.text
    return client


def form(client, path: str, page: str, **fields):
    """POST a form as the page at `page` would (with that page's CSRF token)."""
    return client.post(path, data={"csrf": csrf_of(client.get(page).text), **fields})


def test_a_recording_made_with_staff_is_theirs_and_a_bad_staff_id_is_one_sentence(recorded, seaweed, classroom_clip):
    s3, bucket, results = recorded
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=results["teacher-a"]["manifest_key"])["Body"].read())
    assert manifest["staff_id"] == "teacher-a"
    assert json.loads(s3.get_object(Bucket=bucket, Key=results[None]["manifest_key"])["Body"].read())["staff_id"] is None
    bad = subprocess.run([*CLASSCAP, "process", str(classroom_clip.path), "--to", f"s3://{bucket}", "--staff", "../root"],
                         env=storage_env(seaweed), capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "staff id" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_the_owner_plays_it_through_range_requests_that_return_the_exact_bytes(library):
    build, s3, bucket, results = library
    app = build()
    a = sign_in(app, "teacher-a")
    rid = results["teacher-a"]["recording_id"]
    stored = s3.get_object(Bucket=bucket, Key=results["teacher-a"]["video_key"])["Body"].read()
    mine = a.get("/").text
    assert f"/r/{rid}" in mine and results[None]["recording_id"] not in mine, "my recordings, not the unowned one"
    page = a.get(f"/r/{rid}").text
    assert f'src="/r/{rid}/video"' in page and "download" not in page.replace("nodownload", "")
    first = a.get(f"/r/{rid}/video", headers={"Range": "bytes=0-1023"})
    assert first.status_code == 206 and first.content == stored[:1024]
    assert first.headers["content-range"] == f"bytes 0-1023/{len(stored)}"
    assert first.headers["content-disposition"] == "inline" and first.headers["content-type"] == "video/mp4"
    middle = a.get(f"/r/{rid}/video", headers={"Range": "bytes=5000-"})
    assert middle.status_code == 206 and middle.content == stored[5000:]
    tail = a.get(f"/r/{rid}/video", headers={"Range": "bytes=-100"})
    assert tail.status_code == 206 and tail.content == stored[-100:]
    whole = a.get(f"/r/{rid}/video")
    assert whole.status_code == 200 and whole.content == stored
    for bad in ("bytes=0-10,20-30", "bytes=abc", f"bytes={len(stored)}-", "bytes=10-5", "items=0-1", "bytes=-0"):
        refused = a.get(f"/r/{rid}/video", headers={"Range": bad})
        assert refused.status_code == 416 and refused.headers["content-range"] == f"bytes */{len(stored)}", bad


def test_without_a_session_nothing_is_served_and_a_forged_cookie_is_no_session(library):
    build, s3, bucket, results = library
    app = build()
    rid = results["teacher-a"]["recording_id"]
    anonymous = TestClient(app, follow_redirects=False)
    assert anonymous.get(f"/r/{rid}/video", headers={"Range": "bytes=0-99"}).status_code == 401
    for path in ("/", "/shared", f"/r/{rid}", "/audit"):
        answer = anonymous.get(path)
        assert answer.status_code == 303 and answer.headers["location"] == "/login", path
    forged = TestClient(app, follow_redirects=False, cookies={"classcap_library": "eyJ1c2VyIjogInRlYWNoZXItYSJ9.forged.sig"})
    assert forged.get(f"/r/{rid}/video").status_code == 401
    a = sign_in(app, "teacher-a")
    cookie = a.get("/").request.headers["cookie"]
    assert "classcap_library=" in cookie
    login = TestClient(app, follow_redirects=False)
    login.get("/login")
    answer = login.post("/login", data={"user_id": "teacher-a", "password": PASSWORD, "csrf": csrf_of(login.get("/login").text)})
    set_cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=strict" in set_cookie


def test_only_the_owner_shares_a_recipient_watches_and_comments_and_an_admin_sees_details_only(library):
    build, s3, bucket, results = library
    app = build()
    rid, unowned = results["teacher-a"]["recording_id"], results[None]["recording_id"]
    a, b, c, d = (sign_in(app, u) for u in ("teacher-a", "teacher-b", "admin-c", "lead-d"))
    # before sharing: B can neither see nor play it
    assert rid not in b.get("/shared").text
    assert b.get(f"/r/{rid}").status_code == 403 and b.get(f"/r/{rid}/video", headers={"Range": "bytes=0-9"}).status_code == 403
    # A shares with B; B finds it under Shared with me, plays and comments, and has no share control
    assert form(a, f"/r/{rid}/share", f"/r/{rid}", with_user="teacher-b").status_code == 303
    assert f"/r/{rid}" in b.get("/shared").text
    assert b.get(f"/r/{rid}/video", headers={"Range": "bytes=0-9"}).status_code == 206
    page = b.get(f"/r/{rid}").text
    assert 'id="share-form"' not in page and 'id="delete-form"' not in page and 'id="comment-form"' in page
    assert form(b, f"/r/{rid}/comments", f"/r/{rid}", at="2.5", text="Good questioning here").status_code == 303
    # a forged share request from B, and a forged delete, are refused
    assert form(b, f"/r/{rid}/share", f"/r/{rid}", with_user="admin-c").status_code == 403
    assert form(b, f"/r/{rid}/delete", f"/r/{rid}").status_code == 403
    # the admin sees its details, but not the video, nor the unowned recording
    listing = c.get("/all").text
    assert rid in listing and unowned not in listing and f'href="/r/{rid}"' not in listing
    assert c.get(f"/r/{rid}").status_code == 403 and c.get(f"/r/{rid}/video", headers={"Range": "bytes=0-9"}).status_code == 403
    # the lead sees both, and may play the unowned one (to find whom it belongs to), not A's
    assert unowned in d.get("/all").text and d.get(f"/r/{unowned}/video", headers={"Range": "bytes=0-9"}).status_code == 206
    assert d.get(f"/r/{rid}/video", headers={"Range": "bytes=0-9"}).status_code == 403
    # A sees B's comment as a marker at 0:02.5, and revokes; then B is refused again
    page = a.get(f"/r/{rid}").text
    assert 'class="marker" data-at="2.5"' in page and "Good questioning here" in page
    assert form(a, f"/r/{rid}/revoke", f"/r/{rid}", with_user="teacher-b").status_code == 303
    assert b.get(f"/r/{rid}/video", headers={"Range": "bytes=0-9"}).status_code == 403
    # every step is in the audit, which only the lead reads
    assert a.get("/audit").status_code == 403
    audit = d.get("/audit").text
    for action in ("share", "comment", "revoke", "view"):
        assert f"<td>{action}</td>" in audit, action


def test_path_tricks_unknown_ids_and_forms_without_their_token_are_refused(library):
    build, s3, bucket, results = library
    app = build()
    a = sign_in(app, "teacher-a")
    rid = results["teacher-a"]["recording_id"]
    for path in ("/r/..%2F..%2Fgallery/video", "/r/%2e%2e/video", "/r/20990101T000000Z-00000000/video", f"/r/{rid}%00/video"):
        assert a.get(path, headers={"Range": "bytes=0-9"}).status_code == 404, path
    assert a.post(f"/r/{rid}/share", data={"with_user": "teacher-b"}).status_code == 403, "no CSRF token"
    assert a.post(f"/r/{rid}/share", data={"with_user": "teacher-b", "csrf": "guess"}).status_code == 403
    assert a.post(f"/r/{rid}/comments", data={"at": "1", "text": "x"}).status_code == 403


def test_sign_in_is_refused_after_five_failures_even_with_the_right_password(library):
    build, *_ = library
    app = build()
    client = TestClient(app, follow_redirects=False)
    for _ in range(5):
        token = csrf_of(client.get("/login").text)
        assert client.post("/login", data={"user_id": "teacher-b", "password": "wrong password!", "csrf": token}).status_code == 401
    token = csrf_of(client.get("/login").text)
    refused = client.post("/login", data={"user_id": "teacher-b", "password": PASSWORD, "csrf": token})
    assert refused.status_code == 429 and "Too many attempts" in refused.text


def test_comments_with_replies_export_as_webvtt(library):
    build, s3, bucket, results = library
    app = build()
    a = sign_in(app, "teacher-a")
    rid = results["teacher-a"]["recording_id"]
    assert form(a, f"/r/{rid}/comments", f"/r/{rid}", at="1.5", text="Clear start").status_code == 303
    first = int(re.search(r'data-comment="(\d+)"', a.get(f"/r/{rid}").text).group(1))
    assert form(a, f"/r/{rid}/comments", f"/r/{rid}", at="0", parent=str(first), text="Thanks --> noted").status_code == 303
    vtt = a.get(f"/r/{rid}/comments.vtt")
    assert vtt.status_code == 200 and vtt.headers["content-type"].startswith("text/vtt")
    assert vtt.text.startswith("WEBVTT\n") and vtt.text.count("00:00:01.500 --> 00:00:05.500") == 2
    assert "Teacher A: Clear start" in vtt.text and "Thanks -> noted" in vtt.text


def test_the_owner_deletes_it_from_storage_and_the_lead_keeps_and_unkeeps_an_exemplar(library):
    build, s3, bucket, results = library
    app = build()
    a, d = sign_in(app, "teacher-a"), sign_in(app, "lead-d")
    rid = results["doomed"]["recording_id"]
    folder = results["doomed"]["manifest_key"].rsplit("/", 1)[0]

    def tags(key):
        return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}

    assert form(d, f"/r/{rid}/keep", "/all", value="true").status_code == 303
    assert tags(results["doomed"]["video_key"])["keep"] == "true" and tags(results["doomed"]["manifest_key"])["keep"] == "true"
    assert form(a, f"/r/{rid}/keep", "/", value="true").status_code == 403, "only the lead keeps"
    assert form(d, f"/r/{rid}/keep", "/all", value="false").status_code == 303
    assert tags(results["doomed"]["video_key"])["keep"] == "false"
    assert form(a, f"/r/{rid}/delete", f"/r/{rid}").status_code == 303
    assert s3.list_objects_v2(Bucket=bucket, Prefix=folder + "/").get("KeyCount", 0) == 0
    assert a.get(f"/r/{rid}").status_code == 404 and rid not in a.get("/").text
    audit = d.get("/audit").text
    assert "<td>delete</td>" in audit and "<td>keep</td>" in audit and "<td>unkeep</td>" in audit


def test_the_lead_alone_assigns_a_recording_with_no_owner_and_it_becomes_theirs(library):
    build, s3, bucket, results = library
    app = build()
    rid, key = results["unowned"]["recording_id"], results["unowned"]["manifest_key"]

    def tags():
        return {t["Key"]: t["Value"] for t in s3.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]}

    before = tags()
    a, b, c, d = (sign_in(app, u) for u in ("teacher-a", "teacher-b", "admin-c", "lead-d"))
    listing = d.get("/all").text
    assert f'action="/r/{rid}/assign"' in listing and rid not in b.get("/").text
    assert form(c, f"/r/{rid}/assign", "/", staff_id="admin-c").status_code == 403, "an administrator does not assign"
    assert form(a, f"/r/{rid}/assign", "/", staff_id="teacher-a").status_code == 403, "nor does a teacher"
    assert form(d, f"/r/{rid}/assign", "/all", staff_id="nobody-9").status_code == 400
    assert form(d, f"/r/{rid}/assign", "/all", staff_id="teacher-b").status_code == 303
    manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    assert manifest["staff_id"] == "teacher-b" and manifest["recording_id"] == rid
    assert tags() == before, "the retention date and keep flag stay as they were"
    assert f"/r/{rid}" in b.get("/").text and b.get(f"/r/{rid}/video", headers={"Range": "bytes=0-9"}).status_code == 206
    assert d.get(f"/r/{rid}/video", headers={"Range": "bytes=0-9"}).status_code == 403, "now it is the teacher's"
    assert form(d, f"/r/{rid}/assign", "/all", staff_id="teacher-a").status_code == 403, "assigned once, by the manifest"
    assert "<td>assign</td>" in d.get("/audit").text
    assert f"/r/{rid}" in sign_in(build(), "teacher-b").get("/").text, "after a restart, read back from the manifest"


def test_accounts_shares_comments_and_sessions_survive_a_restart(library):
    build, s3, bucket, results = library
    rid = results["teacher-a"]["recording_id"]
    app = build()
    a = sign_in(app, "teacher-a")
    assert form(a, f"/r/{rid}/share", f"/r/{rid}", with_user="teacher-b").status_code == 303
    assert form(a, f"/r/{rid}/comments", f"/r/{rid}", at="2", text="Before the restart").status_code == 303
    cookies = dict(a.cookies)
    restarted = build()
    again = TestClient(restarted, follow_redirects=False, cookies=cookies)
    assert again.get("/").status_code == 200, "the session signed before the restart still holds"
    b = sign_in(restarted, "teacher-b")
    assert f"/r/{rid}" in b.get("/shared").text and "Before the restart" in b.get(f"/r/{rid}").text


def test_user_add_reads_the_password_from_stdin_and_refuses_a_short_one(tmp_path):
    env = {"CLASSCAP_LIBRARY_DB": f"sqlite:///{tmp_path / 'lib.db'}", "PATH": "/usr/bin:/bin"}
    import os

    env = {**os.environ, **env}
    args = [*CLASSCAP, "library", "user", "add", "--id", "t-9", "--name", "T Nine", "--email", "t9@school.example", "--role", "teacher"]
    short = subprocess.run(args, input="short\n", env=env, capture_output=True, text=True, timeout=60)
    assert short.returncode != 0 and "at least 10 characters" in short.stderr and len(short.stderr.strip().splitlines()) == 1
    ok = subprocess.run(args, input=PASSWORD + "\n", env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    twice = subprocess.run(args, input=PASSWORD + "\n", env=env, capture_output=True, text=True, timeout=60)
    assert twice.returncode != 0 and "already an account t-9" in twice.stderr

    from library.accounts import authenticate
    from library.db import make_engine, sessions

    with sessions(make_engine(env["CLASSCAP_LIBRARY_DB"]))() as s:
        user = authenticate(s, "t-9", PASSWORD)
        assert user is not None and user.password_hash.startswith("$argon2id$") and authenticate(s, "t-9", "wrong password") is None
