"""The read database (FINOPS_READ_DATABASE_URL): a PostgreSQL replica that answers reads only.

It is opened like the primary (``db.open_ledger``) but never migrated or created: a replica
follows its primary, so a replica at another schema is an error that says to wait for it (or
to migrate the primary), never ``finops db upgrade`` against it.
"""

from __future__ import annotations

from sqlalchemy import Engine, text

from finops.errors import ConfigError, StorageError
from finops.storage.db import SCHEMA_HEAD, create_engine_for, current_revision

__all__ = ["open_reader", "replay_age_s"]


def open_reader(url: str) -> Engine:
    """An engine on the read database ``url``, which must answer and be at the newest schema.

    Raises:
        ConfigError: ``url`` is not a database URL.
        StorageError: it does not answer, holds no finops schema, or is at another revision.
    """
    try:
        engine = create_engine_for(url)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace("FINOPS_DATABASE_URL", "FINOPS_READ_DATABASE_URL")) from None
    shown = engine.url.render_as_string(hide_password=True)
    try:
        current = current_revision(engine)
    except StorageError as exc:
        engine.dispose()
        raise StorageError(
            str(exc).replace(
                "cannot open the database", "cannot open the read database (FINOPS_READ_DATABASE_URL)"
            )
        ) from None
    if current == SCHEMA_HEAD:
        return engine
    engine.dispose()
    if current is None:
        raise StorageError(
            f"the read database {shown} (FINOPS_READ_DATABASE_URL) holds no finops schema: point it "
            "at a replica of FINOPS_DATABASE_URL"
        )
    raise StorageError(
        f"the read database {shown} (FINOPS_READ_DATABASE_URL) is at schema {current}, this finops "
        f"needs {SCHEMA_HEAD}: wait for the replica to replay `finops db upgrade` from the primary "
        "(a logical replica does not copy migrations: run it there too), or unset FINOPS_READ_DATABASE_URL"
    )


def replay_age_s(engine: Engine) -> float | None:
    """Seconds since the last transaction a PostgreSQL standby replayed; None when ``engine`` is not
    a standby in recovery (a logical replica, another server) or has replayed nothing yet.

    An upper bound of the lag: on a primary that commits nothing it grows though nothing is missing.
    """
    if engine.dialect.name != "postgresql":
        return None
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT pg_is_in_recovery(), "
                "EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())"
            )
        ).one()
    standby, age = row
    return max(0.0, float(age)) if standby and age is not None else None
