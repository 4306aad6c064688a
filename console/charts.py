"""Server-side charts as inline SVG (no JavaScript library; the CSP allows no CDN)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

PALETTE = ("#1f6feb", "#f79009", "#12b76a", "#7a5af8", "#f04438", "#667085")


def grouped_bars(
    groups: Sequence[str],
    series: Sequence[tuple[str, Sequence[float]]],
    *,
    width: int = 640,
    height: int = 220,
    title: str = "",
) -> str:
    """Grouped vertical bars: one group per label in `groups`, one bar per series in each;
    the values are printed above the bars, a legend below. Returns an <svg> element."""
    top, bottom, left = 24, 44, 8
    plot_h = height - top - bottom
    peak = max([v for _, values in series for v in values] + [1.0])
    n_groups, n_series = max(len(groups), 1), max(len(series), 1)
    group_w = (width - left * 2) / n_groups
    bar_w = max(4.0, min(48.0, group_w * 0.8 / n_series))
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for g, label in enumerate(groups):
        x0 = left + g * group_w + (group_w - bar_w * n_series) / 2
        for s, (name, values) in enumerate(series):
            value = values[g] if g < len(values) else 0
            h = plot_h * value / peak
            x, y = x0 + s * bar_w, top + plot_h - h
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[s % len(PALETTE)]}" data-series="{escape(name)}" '
                f'data-group="{escape(label)}" data-value="{value:g}"/>'
                f'<text x="{x + bar_w / 2 - 1:.1f}" y="{y - 3:.1f}" font-size="10" '
                f'text-anchor="middle">{value:g}</text>'
            )
        parts.append(
            f'<text x="{left + g * group_w + group_w / 2:.1f}" y="{top + plot_h + 14}" '
            f'font-size="12" text-anchor="middle">{escape(label)}</text>'
        )
    x = left
    for s, (name, _) in enumerate(series):
        parts.append(
            f'<rect x="{x}" y="{height - 14}" width="10" height="10" '
            f'fill="{PALETTE[s % len(PALETTE)]}"/><text x="{x + 14}" y="{height - 5}" '
            f'font-size="11">{escape(name)}</text>'
        )
        x += 20 + 7 * len(name)
    parts.append("</svg>")
    return "".join(parts)
