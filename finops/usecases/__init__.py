"""Use cases: what finops does, wiring the domain to the adapters (sources, storage, notify,
config). The CLI and the daemon call these; presenters in :mod:`finops.render` show their results."""
