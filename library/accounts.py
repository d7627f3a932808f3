"""Local accounts (argon2-hashed passwords) and the sign-in rate limit.

A school signs its staff in through its identity provider (`app` does OpenID Connect); local
accounts are for the embedded default, a school without one, and the tests.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from classcap.errors import ClasscapError
from library.db import ROLES, User

STAFF_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")  # as `pipeline.config.STAFF_ID`
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MIN_PASSWORD = 10

_hasher = PasswordHasher()
# Checked against when the id is unknown, so that a wrong id costs the same time as a wrong password.
_NOBODY = _hasher.hash("no account has this password")


class AccountError(ClasscapError, ValueError):
    """An account that cannot be added as asked (one sentence)."""


def add_user(session, user_id: str, name: str, email: str, role: str, password: str | None) -> User:
    if not STAFF_ID.fullmatch(user_id or ""):
        raise AccountError(f"id {user_id!r} must be 1-64 letters, digits, dots, dashes, underscores or @ "
                           "(the staff id recordings are made with).")
    if role not in ROLES:
        raise AccountError(f"role {role!r} must be one of {', '.join(ROLES)}.")
    if not name.strip():
        raise AccountError("the name must not be empty.")
    if not EMAIL.fullmatch(email or ""):
        raise AccountError(f"{email!r} is not an email address.")
    if password is not None and len(password) < MIN_PASSWORD:
        raise AccountError(f"the password must be at least {MIN_PASSWORD} characters long.")
    if session.get(User, user_id) is not None:
        raise AccountError(f"there is already an account {user_id}.")
    if session.scalar(select(User).where(User.email == email)) is not None:
        raise AccountError(f"there is already an account with the email {email}.")
    user = User(id=user_id, name=name.strip(), email=email, role=role,
                password_hash=_hasher.hash(password) if password is not None else None)
    session.add(user)
    return user


def authenticate(session, user_id: str, password: str) -> User | None:
    """The user whose id and password these are, else None (in about the same time either way)."""
    user = session.get(User, user_id) if STAFF_ID.fullmatch(user_id or "") else None
    stored = user.password_hash if user is not None and user.password_hash else _NOBODY
    try:
        _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return None
    return user if stored is not _NOBODY else None


class SignInLimit:
    """At most `attempts` failed sign-ins per `window_s` for one account and for one client
    address; past it, sign-in is refused until the oldest failure is out of the window. Held in
    memory: a restart forgets it (the passwords are argon2 hashes, slow to guess at any rate)."""

    def __init__(self, attempts: int = 5, window_s: float = 300.0, clock=time.monotonic):
        self.attempts, self.window_s, self._clock = attempts, window_s, clock
        self._failures: dict[str, deque] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str) -> deque:
        q = self._failures.setdefault(key, deque())
        cutoff = self._clock() - self.window_s
        while q and q[0] < cutoff:
            q.popleft()
        return q

    def wait_s(self, *keys: str) -> float:
        """Seconds until these may try again (0: now)."""
        with self._lock:
            waits = [q[0] + self.window_s - self._clock() for q in map(self._recent, keys) if len(q) >= self.attempts]
        return max(waits, default=0.0)

    def failed(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._recent(key).append(self._clock())

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
