"""Storage adapters: SQLAlchemy tables, the ledger writes, spend queries. Migrations live in alembic/."""
