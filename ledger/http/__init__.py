"""The HTTP API (FastAPI): queue endpoints, enqueue, auditor history, health, metrics."""

from ledger.http.app import create_app

__all__ = ["create_app"]
