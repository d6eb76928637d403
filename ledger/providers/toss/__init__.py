"""Toss Payments payouts (지급대행 v2): the handler, its client, webhooks and a faithful stub.

``ledger worker --handler ledger.providers.toss:payout`` pays each settlement to
the Toss seller named by its ``metadata.tossSellerId`` (docs/providers/toss.md).
The handler reads ``LEDGER_TOSS_*`` settings the first time it is called.
"""

from ledger.providers.toss.handler import TossPayouts, payout

__all__ = ["TossPayouts", "payout"]
