"""Alembic's environment for the library: run with the connection `library.db.migrate` passes."""

from alembic import context

from library.db import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
