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


def column_series(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    width: int = 640,
    height: int = 180,
    title: str = "",
    label_every: int = 7,
) -> str:
    """One bar per label (e.g. per day), every `label_every`-th label printed below."""
    top, bottom, left = 16, 24, 4
    plot_h = height - top - bottom
    peak = max([*values, 1.0])
    step = (width - left * 2) / max(len(values), 1)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}"><title>{escape(title)}</title>'
        f'<text x="{width - 4}" y="12" font-size="10" text-anchor="end">max {peak:g}</text>'
    ]
    for i, (label, value) in enumerate(zip(labels, values, strict=False)):
        h = plot_h * value / peak
        x = left + i * step
        parts.append(
            f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{max(step - 1, 1):.1f}" '
            f'height="{h:.1f}" fill="{PALETTE[0]}" data-label="{escape(label)}" '
            f'data-value="{value:g}"><title>{escape(label)}: {value:g}</title></rect>'
        )
        if i % label_every == 0:
            parts.append(
                f'<text x="{x:.1f}" y="{height - 8}" font-size="10">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def horizontal_bars(
    items: Sequence[tuple[str, float]], *, width: int = 420, title: str = "", row: int = 20
) -> str:
    """One labelled horizontal bar per (label, value)."""
    label_w, pad = 130, 4
    height = max(len(items), 1) * row + pad * 2
    peak = max([v for _, v in items] + [1.0])
    bar_max = width - label_w - 50
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}"><title>{escape(title)}</title>'
    ]
    for i, (label, value) in enumerate(items):
        y = pad + i * row
        w = bar_max * value / peak
        parts.append(
            f'<text x="{label_w - 6}" y="{y + row * 0.7:.1f}" font-size="11" '
            f'text-anchor="end">{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" '
            f'fill="{PALETTE[i % len(PALETTE)]}" data-label="{escape(label)}" '
            f'data-value="{value:g}"/>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + row * 0.7:.1f}" font-size="11">'
            f"{value:g}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
