"""Loading a worker's handler (``package.module:callable``) and calling it.

A handler is a plain callable that receives a ``ClaimedJob`` (``id``, ``attempt``,
``idempotency_key``, ``provider_key``, ``amount``, ``request``) and returns on
success: nothing, or the provider's outcome (``ledger.ProviderResult`` or a
mapping with its keys; ``pending=True`` when the provider confirms later). Any
exception is a retryable failure whose message is the reason;
``ledger.errors.PermanentFailure`` dead-letters the job at once, and so does an
invalid result (the payout may have happened: an operator must look). ``async
def`` handlers are accepted too: each call runs in its own event loop on the
worker thread that holds the job.

A handler may also carry the provider's other calls as attributes:
``handler.poll(job)`` looks a submitted payout up by ``job.reference`` and returns
a ``ProviderResult`` (``pending=True``: no news) or raises as a payout would;
``handler.cancel(job)`` cancels a submitted payout at the provider, returns its
``ProviderResult`` or raises ``ledger.errors.ProviderRefused``.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable
from typing import Any

from ledger.claims import ClaimedJob, Outcome
from ledger.errors import HandlerNotFound, InvalidRequest, PermanentFailure
from ledger.provider import ProviderResult, provider_result

Handler = Callable[[ClaimedJob], Any]
#: ``handler.poll`` and ``handler.cancel``: the provider's look-up and cancellation
ProviderCall = Callable[[ClaimedJob], Any]


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
        returned = call(handler, job)
    except PermanentFailure as exc:
        return Outcome(job, _reason(exc), retryable=False)
    except Exception as exc:  # any handler error is a retryable failure, by contract
        return Outcome(job, _reason(exc), retryable=True)
    try:
        result = provider_result(returned)
    except InvalidRequest as exc:
        return Outcome(job, f"handler returned an invalid result: {exc.message}", retryable=False)
    return Outcome(job, result=result)


def call(function: Callable[[ClaimedJob], Any], job: ClaimedJob) -> Any:
    """Call a handler (or one of its provider calls), running it to the end if async."""
    returned = function(job)
    if inspect.isawaitable(returned):
        returned = asyncio.run(_awaited(returned))
    return returned


def provider_call(handler: Handler | None, name: str) -> ProviderCall | None:
    """``handler.poll`` or ``handler.cancel`` if the handler has it."""
    found = getattr(handler, name, None)
    return found if callable(found) else None


def polled(poll: ProviderCall, job: ClaimedJob) -> ProviderResult | Outcome:
    """A status look-up: the provider's result, or a failed ``Outcome`` as a payout's."""
    try:
        returned = call(poll, job)
    except PermanentFailure as exc:
        return Outcome(job, _reason(exc), retryable=False)
    except Exception as exc:  # the same contract as a payout
        return Outcome(job, _reason(exc), retryable=True)
    try:
        result = provider_result(returned)
    except InvalidRequest as exc:
        return Outcome(
            job, f"status look-up returned an invalid result: {exc.message}", retryable=False
        )
    return result if result is not None else ProviderResult(reference=job.reference)


async def _awaited(awaitable: Any) -> Any:
    return await awaitable


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
