"""Read-side: spend queries and their renderers (table, JSON, CSV)."""
