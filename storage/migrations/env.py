"""Alembic environment: always run by privacy-proxy itself on a connection it passes in
(``storage.database.upgrade_schema``), for SQLite and PostgreSQL alike."""

from alembic import context

from storage.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
)
with context.begin_transaction():
    context.run_migrations()
