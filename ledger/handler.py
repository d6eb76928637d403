"""Loading a worker's handler (``package.module:callable``) and calling it.

A handler is a plain callable that receives a ``ClaimedJob`` (``id``, ``attempt``,
``idempotency_key``, ``request``) and returns on success. Any exception is a
retryable failure whose message is the reason; ``ledger.errors.PermanentFailure``
dead-letters the job at once. ``async def`` handlers are accepted too: each call
runs in its own event loop on the worker thread that holds the job.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from ledger.claims import ClaimedJob, Outcome
from ledger.errors import HandlerNotFound, PermanentFailure

Handler = Callable[[ClaimedJob], Any]


def load_handler(spec: str) -> Handler:
    """Import ``module:attribute`` (dotted attributes allowed) and check it is callable."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise HandlerNotFound(f"handler {spec!r} is not in the form package.module:callable")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise HandlerNotFound(f"cannot import handler module {module_name!r}: {exc}") from None
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise HandlerNotFound(f"module {module_name!r} has no {attribute!r}") from None
    if not callable(target):
        raise HandlerNotFound(f"handler {spec!r} is not callable")
    return target  # type: ignore[no-any-return]


def run_handler(handler: Handler, job: ClaimedJob) -> Outcome:
    """Call the handler once and turn how it ended into an ``Outcome``."""
    try:
        result = handler(job)
        if inspect.isawaitable(result):
            asyncio.run(_awaited(result))
    except PermanentFailure as exc:
        return Outcome(job, _reason(exc), retryable=False)
    except Exception as exc:  # any handler error is a retryable failure, by contract
        return Outcome(job, _reason(exc), retryable=True)
    return Outcome(job)


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
