"""The library's first tables: users, recordings, shares, comments, audit, settings.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "recordings",
        sa.Column("id", sa.String(80), primary_key=True),
        sa.Column("folder", sa.String(500), nullable=False),
        sa.Column("video_key", sa.String(600), nullable=True),
        sa.Column("manifest_etag", sa.String(100), nullable=False),
        sa.Column("owner_id", sa.String(64), nullable=True, index=True),
        sa.Column("site", sa.String(200), nullable=True),
        sa.Column("room", sa.String(200), nullable=True),
        sa.Column("started_at", sa.String(40), nullable=True),
        sa.Column("seconds", sa.Float, nullable=True),
        sa.Column("policy", sa.String(40), nullable=True),
        sa.Column("status", sa.String(20), nullable=True),
        sa.Column("retention_until", sa.String(20), nullable=True),
        sa.Column("exemplar", sa.Boolean, nullable=False),
        sa.Column("video_bytes", sa.Integer, nullable=True),
    )
    op.create_table(
        "shares",
        sa.Column("recording_id", sa.String(80), sa.ForeignKey("recordings.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("shared_by", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "comments",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("recording_id", sa.String(80), sa.ForeignKey("recordings.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("author_id", sa.String(64), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("at_seconds", sa.Float, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("parent_id", sa.Integer, sa.ForeignKey("comments.id", ondelete="CASCADE"), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("user_id", sa.String(64), nullable=True),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("recording_id", sa.String(80), nullable=True, index=True),
        sa.Column("detail", sa.Text, nullable=False),
    )
    op.create_table(
        "settings",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("settings", "audit", "comments", "shares", "recordings", "users"):
        op.drop_table(table)
