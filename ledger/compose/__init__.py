"""The layer that composes the write side (``ledger``) and the read side (``projections``).

The CLI (``ledger.cli``), the HTTP API (``ledger.http``) and this package sit
on top: they may import both sides; neither side imports them, and the write
side never imports ``projections`` (the import contract in ``.importlinter``).
Here: the demo, the Prometheus metrics and the reconciliation checks.
"""
