"""Alembic environment: the URL comes from renderer (never from alembic.ini)."""

from alembic import context
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from renderer.schema import MIGRATION_LOCK

config = context.config
url = config.attributes.get("url")


def run_offline() -> None:
    # named paramstyle: a percent sign of the SQL is printed as it is, not doubled for a driver
    context.configure(url=url, literal_binds=True, transaction_per_migration=True,
                      dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = create_engine(url, poolclass=NullPool,
                           connect_args=config.attributes.get("connect_args", {}))
    with engine.connect() as connection:
        # One transaction for all pending migrations, under a transaction-scoped lock (a
        # session lock would not hold through PgBouncer in transaction pooling). Two processes
        # migrating a new database at once: the second waits, then reads the revision the
        # first committed and finds nothing left to do.
        context.configure(connection=connection, transaction_per_migration=False)
        with context.begin_transaction():
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"),
                               {"key": MIGRATION_LOCK})
            context.run_migrations()
        connection.commit()  # when the connection had begun already, the block did not commit
    engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
