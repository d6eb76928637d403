"""Paid, reversed and net per day as an SVG drawn on the server (no chart library).

One chart per currency over the last ``days`` days, from ``daily_totals`` (the
projection's per-day sums: what was paid each day, and what came back of it).
Bars are paid, a dark bar inside is what was reversed or refunded, and a line is
the net; amounts stay integers (minor units) until they are scaled to pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from xml.sax.saxutils import escape

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.money import format_amount
from projections.schema import LIVE
from projections.sql import reading

WIDTH, HEIGHT, PAD = 640, 160, 24


@dataclass(frozen=True, slots=True)
class Day:
    day: date
    paid: int
    back: int

    @property
    def net(self) -> int:
        return self.paid - self.back


@dataclass(frozen=True, slots=True)
class Chart:
    """One currency's days, and its picture."""

    currency: str
    days: list[Day]
    svg: str

    @property
    def paid(self) -> int:
        return sum(day.paid for day in self.days)

    @property
    def net(self) -> int:
        return sum(day.net for day in self.days)


def daily_chart(engine: Engine, today: date, days: int) -> list[Chart]:
    """A chart per currency of the ``days`` days up to ``today`` (UTC days)."""
    first = today - timedelta(days=days - 1)
    table = LIVE.daily_totals
    query = sa.select(
        table.c.day, table.c.currency, table.c.amount, table.c.reversed, table.c.refunded
    ).where(table.c.day >= first)
    sums: dict[str, dict[date, Day]] = {}
    with reading(engine) as conn:
        for day, currency, amount, reversed_, refunded in conn.execute(query):
            sums.setdefault(currency, {})[day] = Day(day, int(amount), int(reversed_ + refunded))
    charts = []
    for currency in sorted(sums):
        series = [
            sums[currency].get(first + timedelta(days=n), Day(first + timedelta(days=n), 0, 0))
            for n in range(days)
        ]
        charts.append(Chart(currency, series, _svg(currency, series)))
    return charts


def _svg(currency: str, days: list[Day]) -> str:
    top = max((day.paid for day in days), default=0) or 1
    step = (WIDTH - 2 * PAD) / max(len(days), 1)
    bar = max(step - 2, 1)

    def y(amount: int) -> float:
        return HEIGHT - PAD - (HEIGHT - 2 * PAD) * max(amount, 0) / top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-label="{escape(currency)} paid, returned and net per day">'
    ]
    points = []
    for n, day in enumerate(days):
        x = PAD + n * step
        label = escape(
            f"{day.day}: paid {format_amount(day.paid, currency)}, "
            f"returned {format_amount(day.back, currency)}, net {format_amount(day.net, currency)}"
        )
        parts.append(
            f'<rect class="paid" x="{x:.1f}" y="{y(day.paid):.1f}" width="{bar:.1f}" '
            f'height="{HEIGHT - PAD - y(day.paid):.1f}"><title>{label}</title></rect>'
        )
        if day.back:
            parts.append(
                f'<rect class="back" x="{x:.1f}" y="{y(day.back):.1f}" width="{bar:.1f}" '
                f'height="{HEIGHT - PAD - y(day.back):.1f}"/>'
            )
        points.append(f"{x + bar / 2:.1f},{y(day.net):.1f}")
    parts.append(f'<polyline class="net" fill="none" points="{" ".join(points)}"/>')
    parts.append(
        f'<text x="{PAD}" y="14">{escape(currency)}: max {escape(format_amount(top, currency))}'
        "/day</text></svg>"
    )
    return "".join(parts)
