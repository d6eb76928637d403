"""One contract suite per port (``ledger.ports``), run on every implementation."""
