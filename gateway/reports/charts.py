"""Bar charts as inline SVG, drawn on the server: no JavaScript, no external asset."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from decimal import Decimal

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

WIDTH, HEIGHT = 760, 170
LEFT, RIGHT, TOP, BOTTOM = 64, 8, 10, 24  # margins: the y labels on the left, the days below
Number = int | float | Decimal


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2, 2.5 or 5 x 10^k at or above value (1 for nothing), for the y axis's top."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= value)


def compact(value: float) -> str:
    """12, 3.4k, 5.6M: a y-axis label."""
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.3g}{suffix}"
    return f"{value:.3g}" if value != int(value) else str(int(value))


def bar_chart(title: str, days: Sequence[dt.date], values: Sequence[Number],
              label: Callable[[float], str] = compact) -> SafeString:
    """One bar per day (a zero-height one when nothing was used), y axis from 0 with three labels,
    the first, last and about every seventh day below; each bar's exact value in its tooltip."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = nice_ceiling(float(max(values, default=0)))
    step = plot_w / max(len(days), 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="usage-chart" role="img" width="{WIDTH}" '
             f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}"><title>{escape(title)}</title>']
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        parts.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>'
                     f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                     f"{escape(label(top * fraction))}</text>")
    every = max(1, round(len(days) / 8))
    for i, (day, value) in enumerate(zip(days, values, strict=True)):
        height = plot_h * float(value) / top
        x = LEFT + i * step
        parts.append(f'<rect class="bar" data-day="{day.isoformat()}" x="{x + step * 0.1:.1f}" '
                     f'y="{TOP + plot_h - height:.1f}" width="{max(step * 0.8, 1):.1f}" height="{height:.1f}">'
                     f"<title>{day.isoformat()}: {escape(exact(value))}</title></rect>")
        if i % every == 0 or (i == len(days) - 1 and i % every > every // 2):
            parts.append(f'<text class="axis" x="{x + step / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
                         f"{day.strftime('%m-%d')}</text>")
    parts.append("</svg>")
    return mark_safe("".join(parts))  # every interpolated text is escaped or a number


def exact(value: Number) -> str:
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    return f"{value:,}"
