"""The library's database: accounts, the recordings' catalogue, shares, comments, the audit.

Every table is created by the migrations in `library/migrations` (`migrate` runs them up to
the newest), never by `create_all`, so a school's PostgreSQL and the embedded SQLite file are
always at a known revision.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Integer, String, Text, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

ROLES = ("teacher", "lead", "admin")


def now() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the staff id recordings carry
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    # None: the account signs in through the school's identity provider only
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class Recording(Base):
    """One recording in the bucket, as its manifest describes it (`catalogue.sync` keeps it)."""

    __tablename__ = "recordings"

    id: Mapped[str] = mapped_column(String(80), primary_key=True)
    folder: Mapped[str] = mapped_column(String(500))
    video_key: Mapped[str | None] = mapped_column(String(600), nullable=True)  # None: no video yet
    manifest_etag: Mapped[str] = mapped_column(String(100))
    owner_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    site: Mapped[str | None] = mapped_column(String(200), nullable=True)
    room: Mapped[str | None] = mapped_column(String(200), nullable=True)
    started_at: Mapped[str | None] = mapped_column(String(40), nullable=True)
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    policy: Mapped[str | None] = mapped_column(String(40), nullable=True)
    status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    retention_until: Mapped[str | None] = mapped_column(String(20), nullable=True)
    exemplar: Mapped[bool] = mapped_column(Boolean, default=False)
    video_bytes: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Share(Base):
    __tablename__ = "shares"

    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    shared_by: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class Comment(Base):
    __tablename__ = "comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    recording_id: Mapped[str] = mapped_column(ForeignKey("recordings.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    at_seconds: Mapped[float] = mapped_column(Float)  # the moment of the video it is about
    text: Mapped[str] = mapped_column(Text)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("comments.id", ondelete="CASCADE"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now)


class AuditEvent(Base):
    """Who did what to which recording, when. Recording ids are kept as text: a deleted
    recording's events outlive it."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=now, index=True)
    user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(40))
    recording_id: Mapped[str | None] = mapped_column(String(80), nullable=True, index=True)
    detail: Mapped[str] = mapped_column(Text, default="")


class Setting(Base):
    """The library's own settings (its session signing key), so sessions survive a restart."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


def make_engine(url: str) -> Engine:
    engine = create_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        # SQLite enforces foreign keys (and so ON DELETE CASCADE) only when asked, per connection
        @event.listens_for(engine, "connect")
        def _foreign_keys(connection, _record):
            connection.execute("PRAGMA foreign_keys=ON")
    return engine


def migrate(engine: Engine) -> str:
    """Brings the database up to the newest migration; returns the revision it is at."""
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def sessions(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)


def audit(session, user_id: str | None, action: str, recording_id: str | None = None, detail: str = "") -> None:
    session.add(AuditEvent(user_id=user_id, action=action, recording_id=recording_id, detail=detail))
