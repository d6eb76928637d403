"""``ledger.cli.main.COMMANDS`` names, for every command, the modules that register it.

``main`` imports only those for a named command (a worker does not import the
HTTP server), so a command missing here would still work (every module is
imported for a name it does not know) but one named with the wrong module
would not be found.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections import defaultdict

from ledger.cli.app import app
from ledger.cli.main import COMMANDS, command_modules


def registered() -> dict[str, tuple[str, ...]]:
    for module in command_modules():
        importlib.import_module(f"ledger.cli.{module}")
    found: dict[str, set[str]] = defaultdict(set)
    for command in app.registered_commands:
        assert command.callback is not None
        name = command.name or command.callback.__name__.replace("_", "-")
        found[name].add(command.callback.__module__.rsplit(".", 1)[1])
    for group in app.registered_groups:
        assert group.name is not None and group.typer_instance is not None
        for command in group.typer_instance.registered_commands:
            assert command.callback is not None
            found[group.name].add(command.callback.__module__.rsplit(".", 1)[1])
    return {name: tuple(sorted(modules)) for name, modules in found.items()}


def test_every_command_is_mapped_to_the_modules_that_register_it() -> None:
    assert {name: tuple(sorted(m)) for name, m in COMMANDS.items()} == registered()


def test_each_command_runs_with_only_its_modules_imported() -> None:
    """``ledger NAME --help`` for every command, each in a fresh process (a lone command
    registered must still be called by its name)."""
    for name in COMMANDS:
        done = subprocess.run(
            [sys.executable, "-m", "ledger.cli.main", name, "--help"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, f"ledger {name} --help: {done.stdout}{done.stderr}"
        assert f"ledger {name}" in done.stdout


def test_a_worker_does_not_import_the_http_server_or_alembic() -> None:
    code = (
        "import sys; from ledger.cli.main import register; register(['worker', '--help']); "
        "print(sorted(m for m in ('fastapi', 'alembic', 'uvicorn') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
