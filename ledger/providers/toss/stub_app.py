"""The stub's HTTP face: Toss's v2 payout paths, auth, JWE bodies and error envelope.

* ``POST /v2/payouts``: Basic auth, ``TossPayments-api-security-mode:
  ENCRYPTION``, a JWE body (``alg=dir``, ``enc=A256GCM``, ``iat``, a ``nonce``
  used once) holding a JSON array of payouts; the answer is a JWE too. An
  ``Idempotency-Key`` seen before gets the first answer again, with no new payout.
* ``GET /v2/payouts?refPayoutId=…`` and ``GET /v2/payouts/{id}``: plain JSON.
* ``POST /v2/payouts/{id}/cancel``: no body; only a REQUESTED payout is cancelled.

Errors are ``{"version", "traceId", "entityType": null, "entityBody": null,
"error": {"code", "message"}}`` with the HTTP status.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ledger.providers.toss import jwe
from ledger.providers.toss.errors import TossProtocolError
from ledger.providers.toss.stub import API_VERSION, StubToss


def stub_app(stub: StubToss) -> Starlette:
    """The ASGI app serving ``stub``."""
    routes = _Routes(stub)
    return Starlette(
        routes=[
            Route("/v2/payouts", routes.request_payouts, methods=["POST"]),
            Route("/v2/payouts", routes.list_payouts, methods=["GET"]),
            Route("/v2/payouts/{payout_id}", routes.get_payout, methods=["GET"]),
            Route("/v2/payouts/{payout_id}/cancel", routes.cancel_payout, methods=["POST"]),
        ]
    )


class _Routes:
    def __init__(self, stub: StubToss) -> None:
        self.stub = stub

    async def request_payouts(self, request: Request) -> Response:
        stub = self.stub
        refused = _gate(stub, request, "POST /v2/payouts")
        if refused is not None:
            return refused
        if request.headers.get("TossPayments-api-security-mode") != "ENCRYPTION":
            return _error(400, "INVALID_REQUEST", "payout requests must use ENCRYPTION security")
        key = request.headers.get("Idempotency-Key")
        if key is not None and key in stub.answers:
            return _encrypted(stub, 200, stub.answers[key])
        items = _decrypted_items(stub, await request.body())
        if isinstance(items, Response):
            return items
        if stub.take("hang_before_accept"):
            await asyncio.sleep(stub.hang_seconds)
            return _error(500, "PROVIDER_ERROR", "timed out before the payout was recorded")
        return await _accept(stub, items, key)

    async def list_payouts(self, request: Request) -> Response:
        refused = _gate(self.stub, request, "GET /v2/payouts")
        if refused is not None:
            return refused
        ref = request.query_params.get("refPayoutId")
        items = self.stub.by_ref(ref) if ref else list(self.stub.payouts.values())
        return _json(200, _envelope("listResult", {"items": items, "hasNext": False}))

    async def get_payout(self, request: Request) -> Response:
        refused = _gate(self.stub, request, "GET /v2/payouts/{id}")
        if refused is not None:
            return refused
        payout = self.stub.get(request.path_params["payout_id"])
        if payout is None:
            return _error(404, "NOT_FOUND", "no such payout")
        return _json(200, _envelope("payout", payout))

    async def cancel_payout(self, request: Request) -> Response:
        refused = _gate(self.stub, request, "POST /v2/payouts/{id}/cancel")
        if refused is not None:
            return refused
        payout_id = request.path_params["payout_id"]
        if self.stub.get(payout_id) is None:
            return _error(404, "NOT_FOUND", "no such payout")
        cancelled = await asyncio.to_thread(self.stub.cancel, payout_id)
        if cancelled is None:
            return _error(
                400, "NOT_CANCELABLE_PAYOUT", "only a payout that has not executed is cancelled"
            )
        return _json(200, _envelope("payout", cancelled))


async def _accept(stub: StubToss, items: list[dict[str, Any]], key: str | None) -> Response:
    for item in items:
        refusal = stub.switches.refused_sellers.get(item["destination"])
        if refusal is not None:
            return _error(*refusal)
        if stub.live_ref(item["refPayoutId"]):
            return _error(400, "ALREADY_EXIST_REF_PAYOUT_ID", "refPayoutId is already in use")
    accepted = [stub.create(item) for item in items]
    answer = _envelope("payout", {"items": accepted})
    if key is not None:
        stub.answers[key] = answer
    if stub.switches.complete_on_accept:
        if stub.switches.webhook_before_answer:
            await asyncio.to_thread(_complete_all, stub, accepted)
        else:
            _complete_all(stub, accepted, notify=False)
        answer = _envelope("payout", {"items": [stub.get(p["id"]) for p in accepted]})
        if key is not None:
            stub.answers[key] = answer
    if stub.take("hang_after_accept"):
        await asyncio.sleep(stub.hang_seconds)
    return _encrypted(stub, 200, answer)


def _complete_all(stub: StubToss, payouts: list[dict[str, Any]], notify: bool = True) -> None:
    for payout in payouts:
        if notify:
            stub.complete(payout["id"])
        else:
            stub.payouts[payout["id"]]["status"] = "COMPLETED"
            stub.payouts[payout["id"]]["completedAt"] = payout["requestedAt"]


def _gate(stub: StubToss, request: Request, call: str) -> Response | None:
    """Auth, then the injected 429s and 5xx bursts."""
    stub.calls[call] += 1
    expected = "Basic " + base64.b64encode(f"{stub.secret_key}:".encode()).decode()
    if request.headers.get("Authorization") != expected:
        return _error(401, "UNAUTHORIZED_KEY", "인증되지 않은 시크릿 키 혹은 클라이언트 키 입니다.")
    if stub.take("rate_limits"):
        response = _error(429, "TOO_MANY_REQUESTS", "too many requests")
        response.headers["Retry-After"] = f"{stub.switches.retry_after:g}"
        return response
    if stub.take("server_errors"):
        return _error(500, "FAILED_INTERNAL_SYSTEM_PROCESSING", "internal processing failed")
    return None


def _decrypted_items(stub: StubToss, body: bytes) -> list[dict[str, Any]] | Response:
    try:
        header, plaintext = jwe.decrypt(body, stub.security_key)
    except TossProtocolError:
        return _error(400, "INVALID_ENCRYPTION", "the body does not decrypt with the security key")
    nonce = str(header.get("nonce"))
    if nonce in stub.nonces:
        return _error(400, "INVALID_ENCRYPTION", "the JWE nonce was used before")
    stub.nonces.add(nonce)
    try:
        items = orjson.loads(plaintext)
    except orjson.JSONDecodeError:
        return _error(400, "INVALID_REQUEST", "the body is not JSON")
    if not isinstance(items, list) or not items or not all(_valid(item) for item in items):
        return _error(400, "INVALID_REQUEST", "a payout needs refPayoutId, destination, "
                      "scheduleType and amount {currency: KRW, value > 0}")  # fmt: skip
    return items


def _valid(item: object) -> bool:
    if not isinstance(item, dict):
        return False
    amount = item.get("amount")
    return (
        all(isinstance(item.get(k), str) and item[k] for k in ("refPayoutId", "destination"))
        and item.get("scheduleType") in ("EXPRESS", "SCHEDULED")
        and isinstance(amount, dict)
        and amount.get("currency") == "KRW"
        and isinstance(amount.get("value"), int)
        and amount["value"] > 0
    )


def _envelope(entity_type: str | None, body: Any, error: dict[str, str] | None = None) -> Any:
    return {
        "version": API_VERSION,
        "traceId": uuid.uuid4().hex,
        "entityType": entity_type,
        "entityBody": body,
        "error": error,
    }


def _json(status: int, document: Any) -> Response:
    return Response(orjson.dumps(document), status, media_type="application/json")


def _error(status: int, code: str, message: str) -> Response:
    return _json(status, _envelope(None, None, {"code": code, "message": message}))


def _encrypted(stub: StubToss, status: int, document: Any) -> Response:
    token = jwe.encrypt(orjson.dumps(document), stub.security_key, now=jwe.now_here())
    return Response(token, status, media_type="text/plain")
