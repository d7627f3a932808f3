"""The library's web application (FastAPI): sign in, My recordings, Shared with me, the player,
time-coded comments, sharing, delete and keep, the audit.

`create_app` takes plain values (a database engine, a storage client and bucket); the command in
`pipeline/commands/library.py` reads the configuration and builds them. Every page and every
range request checks the signed-in user against `library.access`; every view, share, revoke,
comment, deletion, keep and assignment is written to the audit in the same transaction.
"""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path
from typing import Annotated

from botocore.exceptions import BotoCoreError, ClientError
from fastapi import Depends, FastAPI, Form, HTTPException, Path as PathParam, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from library import access, catalogue
from library.accounts import SignInLimit, authenticate
from library.db import AuditEvent, Comment, Recording, Setting, Share, User, audit, sessions
from library.oidc import OidcSettings, add_routes as add_oidc_routes
from library.video import BadRange, parse_range, read_range

HERE = Path(__file__).parent
RECORDING_ID = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$"
SESSION_HOURS = 8
SYNC_EVERY_S = 10.0  # the bucket is listed again at most this often, when a list is shown
RecordingId = Annotated[str, PathParam(pattern=RECORDING_ID)]


class NotSignedIn(Exception):
    pass


# Requests are answered on the server's worker threads (AnyIO's default: 40), each range request
# holding one storage connection while it streams: the library's S3 client needs as many.
STORAGE_CONNECTIONS = 40


def create_app(engine, client, storage, bucket: str, secure_cookies: bool = False, limit: SignInLimit | None = None,
               oidc: OidcSettings | None = None) -> FastAPI:
    """`client` reads `bucket` with the library's own credentials (`storage`: their StorageSettings);
    `oidc`: the school's identity provider, beside local accounts."""
    Session = sessions(engine)
    limit = limit or SignInLimit()
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    last_sync = [0.0]
    sync_lock = threading.Lock()

    with Session.begin() as s:
        setting = s.get(Setting, "session_key")
        if setting is None:  # made once and kept, so sessions survive a restart
            setting = Setting(key="session_key", value=secrets.token_urlsafe(48))
            s.add(setting)
        session_key = setting.value

    app = FastAPI(title="classcap library", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(SessionMiddleware, secret_key=session_key, session_cookie="classcap_library",
                       max_age=SESSION_HOURS * 3600, same_site="strict", https_only=secure_cookies)
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.middleware("http")
    async def headers(request: Request, call_next):
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = "default-src 'self'; frame-ancestors 'none'; form-action 'self'"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(NotSignedIn)
    async def to_sign_in(request: Request, exc: NotSignedIn):
        if request.url.path.endswith("/video") or request.method != "GET":
            return PlainTextResponse("Sign in first.", status_code=401)
        return RedirectResponse("/login", status_code=303)

    def db():
        with Session() as s:
            yield s
            s.commit()

    def signed_in(request: Request, s=Depends(db)) -> User:
        user = s.get(User, request.session.get("user") or "")
        if user is None:
            request.session.clear()
            raise NotSignedIn()
        return user

    def csrf_token(request: Request) -> str:
        token = request.session.get("csrf")
        if not token:
            token = request.session["csrf"] = secrets.token_urlsafe(32)
        return token

    def check_csrf(request: Request, csrf: str = Form("")) -> None:
        expected = request.session.get("csrf")
        if not expected or not secrets.compare_digest(csrf, expected):
            raise HTTPException(403, "This form has expired or did not come from the library; reload the page and try again.")

    def page(request: Request, name: str, status: int = 200, **context) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"csrf": csrf_token(request), **context}, status_code=status)

    def refresh(s) -> None:
        # One sync at a time: readers arriving together wait for it and then find it done.
        with sync_lock:
            if time.monotonic() - last_sync[0] < SYNC_EVERY_S:
                return
            try:
                catalogue.sync(client, bucket, s)
                s.commit()
            except IntegrityError:
                s.rollback()  # another library process on the same database added those rows first
            except (ClientError, BotoCoreError) as err:
                s.rollback()
                raise HTTPException(503, f"The library cannot read the recordings' storage: {err}") from err
            last_sync[0] = time.monotonic()

    def recording(s, rid: str) -> Recording:
        row = s.get(Recording, rid)
        if row is None:  # perhaps made since the bucket was last listed
            refresh(s)
            row = s.get(Recording, rid)
        if row is None:
            raise HTTPException(404, "There is no such recording.")
        return row

    def shared_with(s, row: Recording, user: User) -> bool:
        return s.get(Share, (row.id, user.id)) is not None

    def back_to(rid: str, anchor: str = "") -> RedirectResponse:
        return RedirectResponse(f"/r/{rid}{anchor}", status_code=303)

    # -- signing in

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request):
        return page(request, "login.html", error=None, oidc=oidc)

    @app.post("/login", dependencies=[Depends(check_csrf)])
    def login(request: Request, user_id: Annotated[str, Form()], password: Annotated[str, Form()], s=Depends(db)):
        who, where = f"user:{user_id}", f"client:{request.client.host if request.client else '?'}"
        wait = limit.wait_s(who, where)
        if wait > 0:
            audit(s, None, "sign-in refused", detail=f"{user_id}: too many attempts")
            return page(request, "login.html", 429, error=f"Too many attempts: try again in {int(wait) + 1} s.", oidc=oidc)
        user = authenticate(s, user_id, password)
        if user is None:
            limit.failed(who, where)
            audit(s, None, "sign-in failed", detail=user_id)
            return page(request, "login.html", 401, error="That id and password do not match an account.", oidc=oidc)
        limit.succeeded(who)
        start_session(request, user)
        audit(s, user.id, "sign-in")
        return RedirectResponse("/", status_code=303)

    def start_session(request: Request, user: User) -> None:
        request.session.clear()  # a new session: nothing from before signing in carries over
        request.session.update(user=user.id, csrf=secrets.token_urlsafe(32))

    if oidc is not None:
        add_oidc_routes(app, oidc, Session, start_session, audit)

    @app.post("/logout", dependencies=[Depends(check_csrf)])
    def logout(request: Request):
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    # -- lists

    @app.get("/", response_class=HTMLResponse)
    def mine(request: Request, user: User = Depends(signed_in), s=Depends(db)):
        refresh(s)
        rows = s.scalars(select(Recording).where(Recording.owner_id == user.id).order_by(Recording.started_at.desc())).all()
        return page(request, "list.html", user=user, title="My recordings", rows=rows, empty="You have no recordings yet.")

    @app.get("/shared", response_class=HTMLResponse)
    def shared(request: Request, user: User = Depends(signed_in), s=Depends(db)):
        refresh(s)
        rows = s.scalars(select(Recording).join(Share, Share.recording_id == Recording.id)
                         .where(Share.user_id == user.id).order_by(Recording.started_at.desc())).all()
        return page(request, "list.html", user=user, title="Shared with me", rows=rows, empty="Nothing has been shared with you.")

    @app.get("/all", response_class=HTMLResponse)
    def everything(request: Request, user: User = Depends(signed_in), s=Depends(db)):
        if user.role not in ("lead", "admin"):
            raise HTTPException(403, "Only the data lead and administrators see every recording's details.")
        refresh(s)
        rows = [r for r in s.scalars(select(Recording).order_by(Recording.started_at.desc())) if access.can_see(user, r, False)]
        staff = s.scalars(select(User).order_by(User.name)).all() if user.role == "lead" else []
        return page(request, "list.html", user=user, title="All recordings (details only)", rows=rows, metadata=True,
                    staff=staff, empty="The bucket holds no recordings.")

    # -- one recording

    @app.get("/r/{rid}", response_class=HTMLResponse)
    def player(request: Request, rid: RecordingId, user: User = Depends(signed_in), s=Depends(db)):
        row = recording(s, rid)
        shared = shared_with(s, row, user)
        if not access.can_play(user, row, shared):
            raise HTTPException(403, "This recording has not been shared with you.")
        audit(s, user.id, "view", row.id)
        comments = s.scalars(select(Comment).where(Comment.recording_id == row.id).order_by(Comment.at_seconds, Comment.id)).all()
        names = {u.id: u.name for u in s.scalars(select(User))}
        shares = s.scalars(select(Share).where(Share.recording_id == row.id)).all() if access.can_share(user, row) else []
        already = {sh.user_id for sh in shares}
        colleagues = [u for u in s.scalars(select(User).order_by(User.name))
                      if u.id != user.id and u.id not in already] if access.can_share(user, row) else []
        return page(request, "player.html", user=user, row=row, comments=comments, names=names, shares=shares,
                    colleagues=colleagues, can_share=access.can_share(user, row), can_delete=access.can_delete(user, row),
                    can_comment=access.can_comment(user, row, shared))

    @app.get("/r/{rid}/video")
    def video(request: Request, rid: RecordingId, user: User = Depends(signed_in), s=Depends(db)):
        row = recording(s, rid)
        if not access.can_play(user, row, shared_with(s, row, user)):
            raise HTTPException(403, "This recording has not been shared with you.")
        if not row.video_key:
            raise HTTPException(404, "This recording has no video yet.")
        try:
            size = client.head_object(Bucket=bucket, Key=row.video_key)["ContentLength"]
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise HTTPException(404, "This recording's video is no longer in storage.") from err
            raise HTTPException(503, "The library cannot read the recording's storage.") from err
        try:
            wanted = parse_range(request.headers.get("range"), size)
        except BadRange as err:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{size}"}, content=str(err))
        first, last = wanted if wanted else (0, size - 1)
        headers = {"Accept-Ranges": "bytes", "Content-Length": str(last - first + 1),
                   "Content-Disposition": "inline", "Cache-Control": "no-store, private"}
        if wanted:
            headers["Content-Range"] = f"bytes {first}-{last}/{size}"
        s.close()  # access is checked: the database connection goes back to its pool while the bytes stream
        return StreamingResponse(read_range(client, bucket, row.video_key, first, last), status_code=206 if wanted else 200,
                                 media_type="video/mp4", headers=headers)

    @app.post("/r/{rid}/comments", dependencies=[Depends(check_csrf)])
    def comment(rid: RecordingId, at: Annotated[float, Form(ge=0)], text: Annotated[str, Form(max_length=4000)],
                parent: Annotated[int | None, Form()] = None, user: User = Depends(signed_in), s=Depends(db)):
        row = recording(s, rid)
        if not access.can_comment(user, row, shared_with(s, row, user)):
            raise HTTPException(403, "Only the owner and those it is shared with comment on a recording.")
        if not text.strip():
            raise HTTPException(400, "A comment needs some text.")
        if parent is not None:
            reply_to = s.get(Comment, parent)
            if reply_to is None or reply_to.recording_id != row.id:
                raise HTTPException(400, "That comment is not on this recording.")
            at = reply_to.at_seconds
        if row.seconds is not None:
            at = min(at, row.seconds)
        c = Comment(recording_id=row.id, author_id=user.id, at_seconds=round(at, 2), text=text.strip(), parent_id=parent)
        s.add(c)
        s.flush()
        audit(s, user.id, "comment", row.id, f"comment {c.id} at {c.at_seconds:.2f} s")
        return back_to(rid, f"#c{c.id}")

    @app.get("/r/{rid}/comments.vtt")
    def webvtt(rid: RecordingId, user: User = Depends(signed_in), s=Depends(db)):
        row = recording(s, rid)
        if not access.can_comment(user, row, shared_with(s, row, user)):
            raise HTTPException(403, "Only the owner and those it is shared with see its comments.")
        names = {u.id: u.name for u in s.scalars(select(User))}
        comments = s.scalars(select(Comment).where(Comment.recording_id == row.id).order_by(Comment.at_seconds, Comment.id)).all()
        return Response(to_webvtt(comments, names), media_type="text/vtt",
                        headers={"Content-Disposition": f'attachment; filename="{row.id}-comments.vtt"'})

    @app.post("/r/{rid}/share", dependencies=[Depends(check_csrf)])
    def share(rid: RecordingId, with_user: Annotated[str, Form()], user: User = Depends(signed_in), s=Depends(db)):
        row = recording(s, rid)
        if not access.can_share(user, row):
            raise HTTPException(403, "Only the recording's owner shares it.")
        other = s.get(User, with_user)
        if other is None or other.id == user.id:
            raise HTTPException(400, "Choose a colleague who has an account in the library.")
        if s.get(Share, (row.id, other.id)) is None:
            s.add(Share(recording_id=row.id, user_id=other.id, shared_by=user.id))
            audit(s, user.id, "share", row.id, f"with {other.id}")
        return back_to(rid, "#sharing")

    @app.post("/r/{rid}/revoke", dependencies=[Depends(check_csrf)])
    def revoke(rid: RecordingId, with_user: Annotated[str, Form()], user: User = Depends(signed_in), s=Depends(db)):
        row = recording(s, rid)
        if not access.can_share(user, row):
            raise HTTPException(403, "Only the recording's owner revokes a share.")
        existing = s.get(Share, (row.id, with_user))
        if existing is not None:
            s.delete(existing)
            audit(s, user.id, "revoke", row.id, f"from {with_user}")
        return back_to(rid, "#sharing")

    @app.post("/r/{rid}/delete", dependencies=[Depends(check_csrf)])
    def delete(rid: RecordingId, user: User = Depends(signed_in), s=Depends(db)):
        from upload.admin import delete_recording
        from upload.errors import UploadError

        row = recording(s, rid)
        if not access.can_delete(user, row):
            raise HTTPException(403, "Only the recording's owner deletes it.")
        try:
            removed = delete_recording(client, storage, bucket, catalogue.keys(row))
        except UploadError as err:
            raise HTTPException(503, str(err)) from err
        s.delete(row)
        audit(s, user.id, "delete", rid, "removed " + ", ".join(removed))
        return RedirectResponse("/", status_code=303)

    @app.post("/r/{rid}/keep", dependencies=[Depends(check_csrf)])
    def keep(rid: RecordingId, value: Annotated[str, Form(pattern="^(true|false)$")], user: User = Depends(signed_in), s=Depends(db)):
        from upload.admin import set_keep
        from upload.errors import UploadError

        row = recording(s, rid)
        if not access.can_keep(user):
            raise HTTPException(403, "Only the data lead marks exemplars.")
        try:
            set_keep(client, storage, bucket, catalogue.keys(row), keep=value == "true")
        except UploadError as err:
            raise HTTPException(503, str(err)) from err
        row.exemplar = value == "true"
        audit(s, user.id, "keep" if row.exemplar else "unkeep", row.id)
        return RedirectResponse("/all", status_code=303)

    @app.post("/r/{rid}/assign", dependencies=[Depends(check_csrf)])
    def assign(rid: RecordingId, staff_id: Annotated[str, Form()], user: User = Depends(signed_in), s=Depends(db)):
        from upload.admin import assign_owner
        from upload.errors import UploadError

        row = recording(s, rid)
        if not access.can_assign(user, row):
            raise HTTPException(403, "Only the data lead assigns, and only a recording that has no owner.")
        if s.get(User, staff_id) is None:
            raise HTTPException(400, f"There is no account {staff_id} to assign it to.")
        try:
            assign_owner(client, storage, bucket, catalogue.keys(row), staff_id)
            etag = client.head_object(Bucket=bucket, Key=catalogue.keys(row).manifest)["ETag"]
        except UploadError as err:
            raise HTTPException(503, str(err)) from err
        except (ClientError, BotoCoreError) as err:
            raise HTTPException(503, "The library cannot read the recording's storage.") from err
        row.owner_id, row.manifest_etag = staff_id, etag
        audit(s, user.id, "assign", row.id, f"to {staff_id}")
        return RedirectResponse("/all", status_code=303)

    @app.get("/audit", response_class=HTMLResponse)
    def audit_page(request: Request, user: User = Depends(signed_in), s=Depends(db)):
        if not access.can_read_audit(user):
            raise HTTPException(403, "Only the data lead reads the audit.")
        events = s.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1000)).all()
        return page(request, "audit.html", user=user, events=events)

    @app.exception_handler(RequestValidationError)
    async def refused(request: Request, exc: RequestValidationError):
        where = {str(e.get("loc", ("",))[0]) for e in exc.errors()}
        if "path" in where:  # not a recording id: nothing by that name exists here
            return await sentence(request, HTTPException(404, "There is no such recording."))
        return await sentence(request, HTTPException(400, "The form was not filled in as it should be."))

    @app.exception_handler(StarletteHTTPException)
    async def sentence(request: Request, exc: StarletteHTTPException):
        if request.url.path.endswith("/video") or request.url.path.endswith(".vtt"):
            return PlainTextResponse(str(exc.detail), status_code=exc.status_code)
        user_id = request.session.get("user")
        return templates.TemplateResponse(request, "error.html", {"detail": exc.detail, "signed_in": bool(user_id),
                                                                  "csrf": csrf_token(request)}, status_code=exc.status_code)

    return app


def to_webvtt(comments, names: dict[str, str]) -> str:
    """The comments as WebVTT cues: each from its moment for four seconds, "Name: text"."""
    lines = ["WEBVTT", ""]
    for c in comments:
        lines += [f"c{c.id}", f"{_stamp(c.at_seconds)} --> {_stamp(c.at_seconds + 4)}",
                  f"{names.get(c.author_id, c.author_id)}: {' '.join(c.text.split())}".replace("-->", "->"), ""]
    return "\n".join(lines)


def _stamp(seconds: float) -> str:
    ms = int(round(seconds * 1000))
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"
