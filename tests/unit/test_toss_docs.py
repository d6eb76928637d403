"""The Toss client and stub against excerpts of the pages they follow (read 2026-12-07).

Each test quotes the sentence it checks; docs/providers/toss.md lists the pages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import SecretStr, ValidationError

from ledger.claims import ClaimedJob
from ledger.errors import PermanentFailure
from ledger.lifecycle import Job, JobStatus
from ledger.providers.toss import jwe
from ledger.providers.toss.errors import TossProtocolError
from ledger.providers.toss.settings import TossSettings
from ledger.providers.toss.signature import (
    WebhookRefused,
    signature_header,
    signatures,
    verify,
)
from ledger.providers.toss.wire import (
    ErrorKind,
    Payout,
    error_kind,
    failure_reason,
    payout_request,
    ref_payout_id,
    result_of,
    seller_of,
)
from tests.factories import T0, request

KEY = bytes.fromhex("a3f1" * 16)
KST = timezone(timedelta(hours=9))

#: docs.tosspayments.com/guides/v2/payouts and /en/integration-payouts
JWE_EXCERPT = (
    "alg: Key encryption algorithm. Set to dir ... enc: Encryption algorithm for JWE. Set to "
    "A256GCM. iat(issued at): ... Use yyyy-MM-dd'T'HH:mm:ss±hh:mm ISO 8601 format. nonce: ... "
    "Use a random or pseudo-random number such as a UUID."
)
#: techchat.tosspayments.com/m/1308725417263497257 (웹훅 signature 검증)
SIGNATURE_EXCERPT = (
    "{WEBHOOK_PAYLOAD}:{tosspayments-webhook-transmission-time} 값을 보안 키로 HMAC SHA-256 "
    "해싱하세요. 웹훅 헤더에서 v1: 뒤에오는 2개의 값을 모두 base64로 디코딩하세요. ... 하나가 "
    "일치하면 토스페이먼츠에서 보낸 올바른 웹훅이 맞습니다."
)
#: techchat.tosspayments.com/m/1461347481341132882 (a v2 payout request and its refusal)
REQUEST_EXCERPT = {
    "amount": {"currency": "KRW", "value": "500"},
    "destination": "seller_a01kf0w9vdgezd8rdkrt43qvq3g",
    "metadata": {"key1": "value1"},
    "refPayoutId": "20260115220825",
    "scheduleType": "EXPRESS",
    "transactionDescription": "김기원99",
}


def held(**metadata: object) -> ClaimedJob:
    job = Job("job-1", JobStatus.PROCESSING, 2, {"amount": 500}, 5, T0, T0, attempts=1)
    settlement = request(metadata=metadata) if metadata else request()
    return ClaimedJob(job, T0, settlement)


def test_the_jwe_header_is_the_guides() -> None:
    assert "A256GCM" in JWE_EXCERPT
    token = jwe.encrypt(b'[{"a":1}]', KEY, now=datetime(2026, 12, 7, 23, 0, tzinfo=KST))
    header, plaintext = jwe.decrypt(token, KEY)
    assert plaintext == b'[{"a":1}]'
    assert (header["alg"], header["enc"]) == ("dir", "A256GCM")
    assert header["iat"] == "2026-12-07T23:00:00+09:00"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", str(header["iat"]))
    assert re.fullmatch(r"[0-9a-f-]{36}", str(header["nonce"]))
    assert token.split(".")[1] == ""  # dir: no encrypted key


def test_a_body_under_another_key_or_no_jwe_at_all_does_not_decrypt() -> None:
    token = jwe.encrypt(b"{}", KEY, now=datetime.now(UTC))
    with pytest.raises(TossProtocolError):
        jwe.decrypt(token, bytes(32))
    with pytest.raises(TossProtocolError):
        jwe.decrypt("not.a.jwe", KEY)


def test_the_security_key_is_64_hex_characters_used_as_32_bytes() -> None:
    assert TossSettings(security_key=SecretStr("a3f1" * 16)).security_bytes() == KEY
    with pytest.raises(ValidationError, match="64 hexadecimal") as caught:
        TossSettings(security_key=SecretStr("not-a-key"))
    assert "not-a-key" not in str(caught.value)  # a secret never echoed


def test_the_webhook_signature_is_hmac_over_payload_colon_time_either_value_matching() -> None:
    assert "HMAC SHA-256" in SIGNATURE_EXCERPT
    payload, sent = b'{"eventType":"payout.changed"}', "2024-09-05T12:19:21+09:00"
    mine = hmac.new(KEY, payload + b":" + sent.encode(), hashlib.sha256).digest()
    other = base64.b64encode(bytes(32)).decode()
    header = f"v1:{other},{base64.b64encode(mine).decode()}"
    assert signatures(header)[1] == mine
    now = datetime(2024, 9, 5, 3, 20, tzinfo=UTC)
    verify(payload, header, sent, KEY, now=now, tolerance_seconds=300)
    verify(payload, signature_header(payload, sent, [KEY]), sent, KEY, now=now,
           tolerance_seconds=300)  # fmt: skip
    with pytest.raises(WebhookRefused, match="does not match"):
        verify(payload + b" ", header, sent, KEY, now=now, tolerance_seconds=300)
    with pytest.raises(WebhookRefused, match="stale"):
        verify(payload, header, sent, KEY, now=now + timedelta(hours=1), tolerance_seconds=300)
    with pytest.raises(WebhookRefused, match="missing"):
        verify(payload, None, sent, KEY, now=now, tolerance_seconds=300)


def test_the_hex_text_of_the_key_is_accepted_too() -> None:
    payload, sent = b"{}", "2024-09-05T12:19:21+09:00"
    header = signature_header(payload, sent, [KEY.hex().encode()])
    verify(payload, header, sent, KEY, now=datetime.fromisoformat(sent), tolerance_seconds=1)


def test_a_payout_request_has_the_shape_of_the_communitys_example() -> None:
    (body,) = payout_request(held(tossSellerId="seller_1"), "seller_1", "key-1")
    assert set(body) == set(REQUEST_EXCERPT)
    assert body["scheduleType"] == "EXPRESS" and body["amount"]["currency"] == "KRW"
    assert body["refPayoutId"] == "key-1" and body["metadata"]["ledgerJobId"] == "job-1"


def test_the_seller_comes_from_the_settlement_or_the_payout_is_refused_before_any_call() -> None:
    assert seller_of(held(tossSellerId="seller_1")) == "seller_1"
    with pytest.raises(PermanentFailure, match="tossSellerId"):
        seller_of(held())
    usd = ClaimedJob(held().state, T0, request(currency="USD", metadata={"tossSellerId": "s"}))
    with pytest.raises(PermanentFailure, match="KRW"):
        seller_of(usd)


def test_refpayoutids_of_a_round() -> None:
    assert ref_payout_id("key-1", 1) == "key-1"
    assert ref_payout_id("key-1:round-2", 3) == "key-1:round-2:retry-3"


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (403, "FORBIDDEN_SELLER_PAYOUT", ErrorKind.PERMANENT),
        (400, "INVALID_REQUEST", ErrorKind.PERMANENT),
        (400, "INVALID_API_KEY", ErrorKind.PERMANENT),
        (400, "PROVIDER_ERROR", ErrorKind.RETRYABLE),
        (400, "COMMON_ERROR", ErrorKind.RETRYABLE),
        (429, None, ErrorKind.RATE_LIMITED),
        (503, "ANYTHING", ErrorKind.RETRYABLE),
        (404, "NOT_FOUND_SELLER", ErrorKind.PERMANENT),
        (401, "UNAUTHORIZED_KEY", ErrorKind.PERMANENT),
    ],
)
def test_the_error_code_map(status: int, code: str | None, kind: ErrorKind) -> None:
    assert error_kind(status, code) is kind


def test_only_completed_is_paid_an_unknown_status_is_waited_on() -> None:
    def payout(status: str) -> Payout:
        return Payout("FPA_1", "key-1", status, 500, "KRW", "job-1")

    assert not result_of(payout("COMPLETED")).pending
    assert all(result_of(payout(s)).pending for s in ("REQUESTED", "IN_PROGRESS", "HELD"))


def test_tosss_words_enter_a_reason_printable_and_short() -> None:
    payout = Payout("FPA_1", "key-1", "FAILED", 500, "KRW", "job-1", "X" * 500, "bad\x1b[31m" * 200)
    reason = failure_reason(payout)
    assert "\x1b" not in reason and len(reason) < 450
