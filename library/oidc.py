"""Sign-in through the school's identity provider (Entra ID, Google Workspace: any OpenID
Connect issuer), with Authlib.

The provider says who the person is; the library says what they may do. A person signs in to
the account whose email matches the verified email the provider vouches for; the data lead
creates accounts (with their role) beforehand with `classcap library user add`, so signing in
through the school never creates an account nor grants a role.

The session cookie is SameSite=Strict, which a browser does not send on the provider's redirect
back to us (a navigation that started on another site). So the callback only bounces: it
answers a page that moves on, same-site, to /login/oidc/finish, where the cookie (holding
Authlib's state and nonce) arrives and the code is exchanged.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from urllib.parse import urlencode

from authlib.integrations.starlette_client import OAuth, OAuthError
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from library.db import User


@dataclass(frozen=True)
class OidcSettings:
    issuer: str  # e.g. https://login.microsoftonline.com/TENANT/v2.0 or https://accounts.google.com
    client_id: str
    client_secret: str
    label: str = "Sign in with your school account"


def signed_in_email(claims: dict) -> str | None:
    """The email the provider vouches for: `email` (refused where it says it is unverified),
    else Entra's `preferred_username` where it is an address."""
    if claims.get("email_verified") is False:
        return None
    email = claims.get("email") or claims.get("preferred_username")
    return email.strip().lower() if isinstance(email, str) and "@" in email else None


def add_routes(app, settings: OidcSettings, Session, start_session, audit) -> None:
    """/login/oidc, its callback and its finish, on `app`. `start_session(request, user)` signs
    the user in; `audit(session, user_id, action, detail=)` records the outcome."""
    oauth = OAuth()
    oauth.register("school", client_id=settings.client_id, client_secret=settings.client_secret,
                   server_metadata_url=f"{settings.issuer}/.well-known/openid-configuration",
                   client_kwargs={"scope": "openid email profile"})

    def refused(status: int, sentence: str) -> HTMLResponse:
        return HTMLResponse(f'<!doctype html><meta charset="utf-8"><title>Sign in · classcap library</title>'
                            f'<p role="alert">{html.escape(sentence)}</p><p><a href="/login">Back to sign in</a></p>',
                            status_code=status)

    @app.get("/login/oidc")
    async def oidc_start(request: Request):
        try:
            return await oauth.school.authorize_redirect(request, str(request.url_for("oidc_callback")))
        except Exception as err:  # the provider is unreachable or its metadata is broken
            return refused(503, f"The school's sign-in at {settings.issuer} cannot be reached ({type(err).__name__}).")

    @app.get("/login/oidc/callback", name="oidc_callback")
    async def oidc_callback(request: Request):
        target = "/login/oidc/finish?" + urlencode(dict(request.query_params))
        safe = html.escape(target, quote=True)
        return HTMLResponse(f'<!doctype html><meta charset="utf-8"><meta http-equiv="refresh" content="0;url={safe}">'
                            f'<title>Signing in · classcap library</title><p><a href="{safe}">Continue</a></p>')

    @app.get("/login/oidc/finish")
    async def oidc_finish(request: Request):
        try:
            token = await oauth.school.authorize_access_token(request)
        except OAuthError as err:
            return refused(401, f"The school's sign-in did not complete: {err.description or err.error}.")
        claims = token.get("userinfo") or {}
        email = signed_in_email(claims)
        if email is None:
            return refused(403, "The school's sign-in did not give a verified email address.")

        def find_and_record():
            with Session.begin() as s:
                user = s.scalars(select(User).where(func.lower(User.email) == email)).first()
                audit(s, user.id if user else None, "sign-in" if user else "sign-in refused",
                      detail=f"through {settings.issuer} as {email}")
                return user

        user = await run_in_threadpool(find_and_record)
        if user is None:
            return refused(403, f"There is no library account for {email}; ask your data lead to add one.")
        start_session(request, user)
        return RedirectResponse("/", status_code=303)
