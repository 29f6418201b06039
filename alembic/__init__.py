"""finops's Alembic environment, shipped in the package as ``finops.migrations``."""
