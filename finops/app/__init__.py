"""Use cases that wire domain and adapters together: ingest, reprice, demo. The CLI calls these."""
