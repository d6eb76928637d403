"""The ``ledger`` command line (Typer). Thin: parse, call the service, format."""
