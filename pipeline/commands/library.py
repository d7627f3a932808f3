"""`classcap library serve | user add`: the teachers' library over the bucket (`library/`)."""

from __future__ import annotations

import getpass
import sys

from pipeline import settings as settings_of
from pipeline.commands.common import config_option, print_result, say
from pipeline.config import ConfigError


def add_parser(commands) -> None:
    lib = commands.add_parser("library", help="the teachers' library: watch, share and comment on recordings")
    actions = lib.add_subparsers(dest="action", required=True)
    serve = actions.add_parser("serve", help="run the library's web application")
    config_option(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument("--bucket", help="the recordings' bucket (default: $CLASSCAP_BUCKET or the station's)")
    serve.add_argument("--db", help="database URL (default: $CLASSCAP_LIBRARY_DB, else a SQLite file in ~/.local/share/classcap)")
    serve.add_argument("--secure-cookies", action="store_true", help="send the session cookie over HTTPS only (behind a TLS proxy)")
    serve.add_argument("--oidc-issuer", help="sign in through the school's OpenID Connect provider, e.g. "
                       "https://login.microsoftonline.com/TENANT/v2.0 (default: $CLASSCAP_OIDC_ISSUER); "
                       "the client secret is read from $CLASSCAP_OIDC_CLIENT_SECRET")
    serve.add_argument("--oidc-client-id", help="the library's client id at that provider (default: $CLASSCAP_OIDC_CLIENT_ID)")
    serve.set_defaults(run=serve_library)
    users = actions.add_parser("user", help="library accounts")
    user_actions = users.add_subparsers(dest="user_action", required=True)
    add = user_actions.add_parser("add", help="add an account; the password is read from stdin")
    add.add_argument("--id", required=True, help="staff id (the one recordings are made with: --staff)")
    add.add_argument("--name", required=True)
    add.add_argument("--email", required=True)
    add.add_argument("--role", required=True, choices=("teacher", "lead", "admin"))
    add.add_argument("--db", help="database URL (as for serve)")
    add.set_defaults(run=add_user)


def _database(url: str):
    from sqlalchemy.exc import SQLAlchemyError

    from library.db import make_engine, migrate

    try:
        engine = make_engine(url)
        migrate(engine)
    except (SQLAlchemyError, ValueError, ImportError) as err:
        raise ConfigError(f"The library's database {url} cannot be opened: {str(err).splitlines()[0]}") from err
    return engine


def _password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != first:
            raise ConfigError("The two passwords differ; nothing was added.")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def add_user(args) -> int:
    from library.accounts import AccountError
    from library.accounts import add_user as add
    from library.db import audit, sessions

    engine = _database(settings_of.library_database(args.db))
    password = _password()
    with sessions(engine).begin() as s:
        try:
            add(s, args.id, args.name, args.email, args.role, password)
        except AccountError as err:
            raise ConfigError(f"No account was added: {err}") from err
        audit(s, None, "account added", detail=f"{args.id} ({args.role}) from the command line")
    say(f"added {args.role} {args.id} ({args.name})")
    print_result({"id": args.id, "role": args.role})
    return 0


def oidc_settings(issuer: str | None, client_id: str | None):
    """The school's sign-in from the command line or CLASSCAP_OIDC_ISSUER / _CLIENT_ID; the secret
    only from CLASSCAP_OIDC_CLIENT_SECRET (never the command line, which every user of the server
    sees). None where none is set up (local accounts only)."""
    import os

    from library.oidc import OidcSettings

    issuer = issuer or os.environ.get("CLASSCAP_OIDC_ISSUER")
    client_id = client_id or os.environ.get("CLASSCAP_OIDC_CLIENT_ID")
    if not issuer and not client_id:
        return None
    secret = os.environ.get("CLASSCAP_OIDC_CLIENT_SECRET")
    if not issuer or not client_id or not secret:
        raise ConfigError("Sign-in through the school needs an issuer, a client id and a client secret "
                          "(--oidc-issuer, --oidc-client-id and $CLASSCAP_OIDC_CLIENT_SECRET).")
    if not issuer.startswith(("https://", "http://127.0.0.1", "http://localhost")):
        raise ConfigError(f"The school's identity provider {issuer} must be reached over https.")
    return OidcSettings(issuer.rstrip("/"), client_id, secret)


def serve_library(args) -> int:
    import uvicorn

    from library.app import STORAGE_CONNECTIONS, create_app
    from upload.storage import check_bucket, make_client

    oidc = oidc_settings(args.oidc_issuer, args.oidc_client_id)
    station = settings_of.station_of(args)
    bucket = settings_of.bucket(station, args.bucket)
    storage = settings_of.storage(station)
    client = make_client(storage, connections=STORAGE_CONNECTIONS)
    check_bucket(client, storage, bucket)
    engine = _database(settings_of.library_database(args.db))
    app = create_app(engine, client, storage, bucket, secure_cookies=args.secure_cookies, oidc=oidc)
    say(f"library on http://{args.host}:{args.port}/ over s3://{bucket}")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
