"""What routes are given: the ledger, its read models, the metrics and the tokens.

``create_app`` keeps one ``Wiring`` on the application; routes ask for its parts
through typed dependencies (``LedgerDep`` is ``Annotated[Ledger, Depends(...)]``)
and never read the application's state themselves. A test may replace a part
with ``app.dependency_overrides[deps.ledger] = ...``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request, Response
from sqlalchemy.engine import Engine

from ledger.compose.metrics import Metrics
from ledger.http.console.session import Sessions
from ledger.http.roles import Role
from ledger.log_reader import LogReader
from ledger.providers.toss.webhooks import TossWebhooks
from ledger.replica import replica_lag
from ledger.service import Ledger
from ledger.settings import Settings
from projections.reads import ReadModels

#: the parsed ``LEDGER_API_TOKENS``: (token, role) pairs; empty means an open API
Tokens = list[tuple[str, Role]]


@dataclass(frozen=True, slots=True)
class Wiring:
    """Everything the routes need, built once per application."""

    ledger: Ledger
    metrics: Metrics
    tokens: Tokens
    #: where auditors read: a streaming replica (``LEDGER_AUDIT_DATABASE_URL``), else None
    audit_engine: Engine | None = None
    #: Toss's webhook receiver (``LEDGER_TOSS_SECURITY_KEY`` set), else None
    toss: TossWebhooks | None = None
    #: the console's session cookies and CSRF tokens (``ledger.http.console``)
    sessions: Sessions = field(default_factory=lambda: Sessions([]))


def wiring(request: Request) -> Wiring:
    """The application's ``Wiring`` (the one place that reads the application's state)."""
    found = getattr(request.app.state, "wiring", None)
    if not isinstance(found, Wiring):
        raise RuntimeError("the app has no Wiring: build it with ledger.http.app.create_app")
    return found


WiringDep = Annotated[Wiring, Depends(wiring)]


def ledger(wired: WiringDep) -> Ledger:
    """The write side: commands and the job view."""
    return wired.ledger


def metrics(wired: WiringDep) -> Metrics:
    return wired.metrics


def tokens(wired: WiringDep) -> Tokens:
    return wired.tokens


def toss(wired: WiringDep) -> TossWebhooks | None:
    """Toss's webhook receiver, when this server is configured for Toss."""
    return wired.toss


LedgerDep = Annotated[Ledger, Depends(ledger)]
TossDep = Annotated[TossWebhooks | None, Depends(toss)]
MetricsDep = Annotated[Metrics, Depends(metrics)]
TokensDep = Annotated[Tokens, Depends(tokens)]


#: response header of an auditor's read from the replica: how far behind it answered
LAG_HEADER = "Ledger-Replica-Lag"


def log(wired: WiringDep, response: Response) -> LogReader:
    """The log, for reads straight from it (history, the audit page).

    With ``LEDGER_AUDIT_DATABASE_URL`` set, the auditors' replica: the answer
    carries its lag (``Ledger-Replica-Lag: bytesBehind=…; secondsSinceReplay=…``).
    """
    if wired.audit_engine is None:
        return wired.ledger.reader
    lag = replica_lag(wired.audit_engine, wired.ledger.engine)
    if lag is not None:
        since = lag.seconds_since_replay
        response.headers[LAG_HEADER] = (
            f"bytesBehind={lag.bytes_behind}; "
            f"secondsSinceReplay={'none' if since is None else f'{since:.3f}'}"
        )
    return LogReader(wired.audit_engine)


def settings(ledger: LedgerDep) -> Settings:
    return ledger.settings


LogDep = Annotated[LogReader, Depends(log)]
SettingsDep = Annotated[Settings, Depends(settings)]


def reads(ledger: LedgerDep) -> ReadModels:
    """The live read models as of the log's head: the projection tables plus the tail
    of the log they have not folded, folded in memory. A GET writes nothing."""
    return ReadModels(ledger.reader)


ReadsDep = Annotated[ReadModels, Depends(reads)]
