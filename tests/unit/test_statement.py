"""The provider statement: parsing (clear errors) and the diff against completed settlements."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ledger.audit.settled import Settlement, completed_settlements
from ledger.audit.statement import Period, StatementLine, diff_statement, parse_statement
from ledger.errors import IllegalTransition, InvalidStatement
from ledger.events import EventType
from tests.factories import default_data, request, stored

HEADER = "idempotency_key,amount,currency,settled_at"
AT = datetime(2026, 1, 2, tzinfo=UTC)


def settlement(key: str, amount: int, currency: str = "KRW") -> Settlement:
    return Settlement(key, amount, currency, f"job-{key}", AT)


def line(n: int, key: str, amount: int, currency: str = "KRW") -> StatementLine:
    return StatementLine(n, key, amount, currency, AT)


# -- parsing ----------------------------------------------------------------------


def test_parses_lines_with_their_numbers() -> None:
    text = [
        "\ufeff" + HEADER,
        "k1,10000,KRW,2026-01-02T00:00:00Z",
        "",
        "k2,1234,USD,2026-01-02T00:00:00+00:00",
    ]
    assert parse_statement(text) == [line(2, "k1", 10000), line(4, "k2", 1234, "USD")]


def test_columns_in_any_order_and_extra_columns_ignored() -> None:
    text = ["note,currency,settled_at,amount,idempotency_key", "x,KRW,2026-01-02,5,k"]
    assert parse_statement(text) == [line(2, "k", 5)]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([], "line 1: the statement is empty"),
        (["key,amount,currency,settled_at"], "line 1: the header lacks idempotency_key"),
        ([HEADER, "k,10.5,KRW,2026-01-02"], "line 2: amount '10.5' is not a whole number"),
        ([HEADER, "k,1e3,KRW,2026-01-02"], "line 2: amount '1e3'"),
        ([HEADER, "k,,KRW,2026-01-02"], "line 2: amount ''"),
        ([HEADER, "k1,1,KRW,2026-01-02", "k,1,krw,2026-01-02"], "line 3: invalid currency"),
        ([HEADER, "k,1,XXX,2026-01-02"], "line 2: invalid currency"),
        ([HEADER, "k,1,KRW,yesterday"], "line 2: settled_at 'yesterday'"),
        ([HEADER, ",1,KRW,2026-01-02"], "line 2: idempotency_key is empty"),
        ([HEADER, "k,1,KRW"], "line 2: has 3 columns"),
        ([HEADER, 'k,"1,KRW,2026-01-02'], "not valid CSV"),
    ],
)
def test_malformed_statements_name_the_line(rows: list[str], message: str) -> None:
    with pytest.raises(InvalidStatement) as caught:
        parse_statement(rows)
    assert message in caught.value.message
    assert caught.value.exit_code == 2


# -- the diff ---------------------------------------------------------------------


def test_a_matching_statement_is_ok() -> None:
    diff = diff_statement(
        [settlement("a", 100), settlement("b", 250, "USD")],
        [line(2, "b", 250, "USD"), line(3, "a", 100)],
    )
    assert diff.ok
    assert diff.ledger_totals == diff.statement_totals == {"KRW": 100, "USD": 250}
    assert diff.as_dict()["ok"] is True


def test_each_kind_of_difference_is_reported_once() -> None:
    ledger = [
        settlement("same", 100),
        settlement("missing", 200),
        settlement("amount", 300),
        settlement("currency", 400),
        settlement("dup", 500),
        settlement("twice", 600),
        settlement("twice", 600),  # the ledger side can be fed duplicates too
    ]
    statement = [
        line(2, "same", 100),
        line(3, "amount", 301),
        line(4, "currency", 400, "USD"),
        line(5, "extra", 700),
        line(6, "dup", 500),
        line(7, "dup", 500),
        line(8, "twice", 600),
    ]
    diff = diff_statement(ledger, statement)
    assert not diff.ok
    assert [s.idempotency_key for s in diff.missing_from_statement] == ["missing"]
    assert [s.idempotency_key for s in diff.extra_in_statement] == ["extra"]
    assert [(m.idempotency_key, m.line) for m in diff.mismatches] == [
        ("amount", 3),
        ("currency", 4),
    ]
    assert [(s.idempotency_key, s.line) for s in diff.duplicates_in_statement] == [("dup", 7)]
    assert [s.idempotency_key for s in diff.duplicates_in_ledger] == ["twice"]
    assert diff.ledger_totals == {"KRW": 100 + 200 + 300 + 400 + 500 + 1200}
    assert diff.statement_totals == {"KRW": 100 + 301 + 700 + 1000 + 600, "USD": 400}
    assert (diff.ledger_count, diff.statement_count) == (7, 7)
    record = diff.as_dict()
    assert record["mismatches"][0] == {
        "idempotencyKey": "amount",
        "jobId": "job-amount",
        "line": 3,
        "ledger": {"amount": 300, "currency": "KRW"},
        "statement": {"amount": 301, "currency": "KRW"},
    }


def test_a_duplicate_with_a_wrong_first_line_is_a_mismatch_and_a_duplicate() -> None:
    diff = diff_statement([settlement("k", 100)], [line(2, "k", 99), line(3, "k", 100)])
    assert [m.line for m in diff.mismatches] == [2]
    assert [d.line for d in diff.duplicates_in_statement] == [3]
    assert not diff.missing_from_statement and not diff.extra_in_statement


# -- completed settlements folded from events ----------------------------------------------


def test_completed_settlements_fold_the_lifecycle() -> None:
    enq = default_data(EventType.ENQUEUED)
    other = {**enq, "request": request(idempotency_key="key-2", amount=7).as_record()}
    events = [
        stored(EventType.ENQUEUED, job_id="a", version=1, position=1, data=enq),
        stored(EventType.ENQUEUED, job_id="b", version=1, position=2, data=other),
        stored(EventType.ATTEMPTED, job_id="a", version=2, position=3),
        stored(EventType.ATTEMPTED, job_id="b", version=2, position=4),
        stored(EventType.COMPLETED, job_id="a", version=3, position=5),
        stored(EventType.FAILED, job_id="b", version=3, position=6),
    ]
    settled = list(completed_settlements(events))
    assert [(s.job_id, s.idempotency_key, s.amount, s.currency) for s in settled] == [
        ("a", "key-1", 10_000, "KRW")
    ]
    assert settled[0].completed_at == events[4].occurred_at


def test_an_event_after_completion_is_illegal() -> None:
    enq = default_data(EventType.ENQUEUED)
    events = [
        stored(EventType.ENQUEUED, data=enq),
        stored(EventType.ATTEMPTED, version=2),
        stored(EventType.COMPLETED, version=3),
        stored(EventType.COMPLETED, version=4),
    ]
    with pytest.raises(IllegalTransition):
        list(completed_settlements(events))


# -- periods, settled_at and provider references -----------------------------------------

MARCH = Period(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 31, 23, 59, 59, tzinfo=UTC))


def paid(key: str, at: datetime, amount: int = 100, reference: str | None = None) -> Settlement:
    return Settlement(key, amount, "KRW", f"job-{key}", at, reference)


def settled(
    n: int, key: str, at: datetime, amount: int = 100, reference: str | None = None
) -> StatementLine:
    return StatementLine(n, key, amount, "KRW", at, reference)


def test_a_monthly_statement_leaves_other_months_alone() -> None:
    """Payouts of February and April are not "missing" from March's statement."""
    ledger = [
        paid("feb", datetime(2026, 2, 10, tzinfo=UTC)),
        paid("mar", datetime(2026, 3, 10, tzinfo=UTC)),
        paid("mar-lost", datetime(2026, 3, 20, tzinfo=UTC)),
        paid("apr", datetime(2026, 4, 10, tzinfo=UTC)),
    ]
    diff = diff_statement(
        ledger, [settled(2, "mar", datetime(2026, 3, 10, 1, tzinfo=UTC))], period=MARCH
    )
    assert [s.idempotency_key for s in diff.missing_from_statement] == ["mar-lost"]
    assert diff.not_in_period == 2 and diff.outside_period == []
    assert diff.ledger_totals == {"KRW": 200} and diff.ledger_count == 2


def test_payouts_at_the_period_edges_are_outside_not_missing() -> None:
    just_before = datetime(2026, 2, 28, 23, 0, tzinfo=UTC)
    just_after = datetime(2026, 4, 1, 0, 30, tzinfo=UTC)
    ledger = [paid("before", just_before), paid("after", just_after)]
    diff = diff_statement(ledger, [], period=MARCH, tolerance=timedelta(hours=2))
    assert diff.ok and diff.missing_from_statement == []
    assert [s.idempotency_key for s in diff.outside_period] == ["before", "after"]
    # a payout completed just before the period, settled in it, is matched (not extra)
    line = settled(2, "before", datetime(2026, 3, 1, 0, 30, tzinfo=UTC))
    matched = diff_statement(ledger, [line], period=MARCH, tolerance=timedelta(hours=2))
    assert matched.extra_in_statement == [] and matched.ok


def test_the_default_period_is_the_statements_own_span() -> None:
    ledger = [
        paid("a", datetime(2026, 3, 5, tzinfo=UTC)),
        paid("z", datetime(2026, 5, 5, tzinfo=UTC)),
    ]
    lines = [settled(2, "a", datetime(2026, 3, 5, 0, 1, tzinfo=UTC))]
    diff = diff_statement(ledger, lines)
    assert diff.ok and diff.not_in_period == 1
    assert diff.period == Period(lines[0].settled_at, lines[0].settled_at)


def test_settled_at_is_compared_within_the_tolerance() -> None:
    at = datetime(2026, 3, 10, tzinfo=UTC)
    ledger = [paid("near", at), paid("far", at)]
    lines = [
        settled(2, "near", at + timedelta(minutes=50)),
        settled(3, "far", at + timedelta(days=3)),
    ]
    diff = diff_statement(ledger, lines, period=MARCH, tolerance=timedelta(hours=1))
    assert not diff.ok
    assert [(m.settlement.idempotency_key, m.line.line) for m in diff.settled_at_mismatches] == [
        ("far", 3)
    ]
    assert diff.as_dict()["settledAtMismatches"][0]["line"] == 3


def test_lines_match_on_the_provider_reference_where_the_log_has_one() -> None:
    at = datetime(2026, 3, 10, tzinfo=UTC)
    ledger = [paid("k1", at, reference="po_1"), paid("k2", at), paid("k3", at, reference="po_3")]
    lines = [
        settled(2, "", at, reference="po_1"),  # the provider knows only its own id
        settled(3, "k2", at, reference="po_2"),  # the log has no reference: the key decides
        settled(4, "k3", at, reference="po_9"),  # the log paid k3 as po_3: not this payout
    ]
    diff = diff_statement(ledger, lines, period=MARCH)
    assert [s.line for s in diff.extra_in_statement] == [4]
    assert [s.idempotency_key for s in diff.missing_from_statement] == ["k3"]
    assert not diff.mismatches and not diff.duplicates_in_statement


def test_a_statement_may_carry_references_instead_of_keys() -> None:
    text = ["reference,amount,currency,settled_at", "po_1,5,KRW,2026-03-01T00:00:00Z"]
    (parsed,) = parse_statement(text)
    assert (parsed.reference, parsed.idempotency_key) == ("po_1", "")
    with pytest.raises(InvalidStatement, match="idempotency_key is empty and so is reference"):
        parse_statement(["reference,amount,currency,settled_at", ",5,KRW,2026-03-01"])


def test_settlements_carry_the_providers_reference_and_settle_once() -> None:
    enq = default_data(EventType.ENQUEUED)
    done = {"attempt": 1, "amount": 10_000, "reference": "po_42", "fee": 0, "status": "paid"}
    events = [
        stored(EventType.ENQUEUED, data=enq),
        stored(EventType.ATTEMPTED, version=2),
        stored(EventType.COMPLETED, version=3, data=done),
    ]
    (only,) = completed_settlements(events)
    assert only.reference == "po_42"
