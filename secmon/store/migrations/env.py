"""Alembic environment: runs on the connection ``secmon.store.db.migrate`` passes in."""

from __future__ import annotations

from alembic import context

from secmon.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` CLI use: take the URL from SECMON_DATABASE_URL
    import os

    from secmon.store.db import create_db_engine

    engine = create_db_engine(os.environ.get("SECMON_DATABASE_URL", "sqlite:///secmon.db"))
    with engine.begin() as connection:
        context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
