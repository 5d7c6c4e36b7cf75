"""The SVG bar charts: one bar per day, axis labels, nothing unescaped."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

from gateway.reports import charts

DAYS = [dt.date(2026, 1, 1) + dt.timedelta(days=n) for n in range(31)]


def test_one_bar_per_day_scaled_to_a_nice_top() -> None:
    svg = charts.bar_chart("Requests", DAYS, [n * 10 for n in range(31)])
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert len(re.findall(r'<rect class="bar"', svg)) == 31
    assert re.findall(r'data-day="([\d-]+)"', svg) == [d.isoformat() for d in DAYS]
    assert ">500<" in svg and ">250<" in svg and ">0<" in svg  # y labels: 0, half, nice top (300 -> 500)
    assert "01-01" in svg and "01-31" in svg  # x labels, first and last day


def test_empty_and_decimal_values() -> None:
    svg = charts.bar_chart("<Cost>", DAYS[:3], [Decimal(0), Decimal("0.25"), Decimal("1.5")])
    assert "&lt;Cost&gt;" in svg and "<Cost>" not in svg
    assert "2026-01-03: 1.5</title>" in svg and len(re.findall('class="bar"', svg)) == 3
    assert charts.bar_chart("x", [], []).count('class="bar"') == 0


def test_nice_ceiling_and_compact_labels() -> None:
    assert [charts.nice_ceiling(v) for v in (0, 0.3, 7, 12, 230, 2600)] == [1, 0.5, 10, 20, 250, 5000]
    assert [charts.compact(v) for v in (0, 2.5, 1500, 2_500_000)] == ["0", "2.5", "1.5k", "2.5M"]
