"""The daemon's HTTP API (Starlette on uvicorn): ingest, budget checks, spend, health and metrics."""

from finops.daemon.http.app import create_app

__all__ = ["create_app"]
