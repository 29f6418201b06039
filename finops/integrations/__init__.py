"""Integrations: finops inside other tools' processes (an entry point, beside the CLI and the daemon).

They talk to a finops daemon over its HTTP API, so they never open the ledger themselves.
"""
