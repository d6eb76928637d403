"""Errors cross process boundaries whole (a forked fold, verify workers send them back)."""

from __future__ import annotations

import pickle

import pytest

from ledger import errors
from ledger.errors import LedgerError

EXAMPLES: list[LedgerError] = [
    errors.IllegalTransition("job-1", "failed", "failed"),
    errors.IdempotencyConflict("key-1", "job-1"),
    errors.ConcurrencyError("job-1", 2, 3),
    errors.InvalidRequest("amount must be positive", field="amount"),
    errors.StaleAttempt("job-1", 1, None),
    errors.DatabaseUnavailable(),
    errors.ProjectionBusy("another rebuild is running"),
    errors.FoldProcessLost(9),
]


@pytest.mark.parametrize("error", EXAMPLES, ids=lambda error: type(error).__name__)
def test_an_error_survives_pickling_with_its_message_and_fields(error: LedgerError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert copy.message == error.message
    assert vars(copy) == vars(error)
    assert copy.exit_code == error.exit_code
