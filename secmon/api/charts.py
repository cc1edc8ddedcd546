"""Small server-side SVG charts for the dashboard (no JavaScript, no external assets).

Presentation attributes (``fill``, ``x`` …) rather than ``style`` keep them inside the
Content-Security-Policy (no inline styles).  Every text goes through ``markupsafe.escape``.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

#: A colour-blind-friendly palette (Okabe–Ito), cycled over series.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")


def stacked_bars(days: Sequence[str], series: dict[str, list[int]], labels: dict[str, str], *,
                 title: str, width: int = 720, height: int = 260) -> Markup:  # fmt: skip
    """Columns per day, stacked by series (e.g. findings per day by kind), with a legend."""
    left, bottom, top = 36, 40, 24
    legend_w = 190
    plot_w = width - left - legend_w - 10
    plot_h = height - top - bottom
    totals = [sum(series[k][i] for k in series) for i in range(len(days))]
    peak = max([*totals, 1])
    bar_w = plot_w / max(len(days), 1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{escape(title)}" class="chart">', f"<title>{escape(title)}</title>"]  # fmt: skip
    for tick in sorted({0, peak // 2, peak}):  # whole numbers only (counts)
        y = top + plot_h * (1 - tick / peak)
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{tick}</text>')
    for i, day in enumerate(days):
        x = left + i * bar_w
        y = top + plot_h
        for j, key in enumerate(series):
            n = series[key][i]
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            out.append(f'<rect x="{x + 2:.1f}" y="{y:.1f}" width="{max(bar_w - 4, 1):.1f}" height="{h:.1f}" '
                       f'fill="{PALETTE[j % len(PALETTE)]}"><title>{escape(day)} · {escape(labels.get(key, key))}: '
                       f'{n}</title></rect>')  # fmt: skip
        if i % max(len(days) // 7, 1) == 0:
            out.append(f'<text x="{x + bar_w / 2:.1f}" y="{top + plot_h + 14}" text-anchor="middle" '
                       f'font-size="10">{escape(day[5:])}</text>')  # fmt: skip
    for j, key in enumerate(list(series)[:12]):
        ly = top + j * 16
        lx = left + plot_w + 14
        out.append(f'<rect x="{lx}" y="{ly}" width="10" height="10" fill="{PALETTE[j % len(PALETTE)]}"/>')
        out.append(f'<text x="{lx + 14}" y="{ly + 9}" font-size="11">{escape(labels.get(key, key))} '
                   f'({sum(series[key])})</text>')  # fmt: skip
    if not series:
        out.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" font-size="12" '
                   f'fill="#666">—</text>')  # fmt: skip
    out.append("</svg>")
    return Markup("".join(out))


def grouped_hbars(rows: Sequence[tuple[str, dict[str, int]]], parts: dict[str, tuple[str, str]], *,
                  title: str, width: int = 720) -> Markup:  # fmt: skip
    """One horizontal stacked bar per row (e.g. case category) split into parts (SLA states).

    ``parts``: part key → (label, colour)."""
    label_w, row_h, top = 170, 26, 26
    height = top + row_h * len(rows) + 10
    plot_w = width - label_w - 60
    peak = max([sum(v.values()) for _, v in rows] + [1])
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
           f'aria-label="{escape(title)}" class="chart">', f"<title>{escape(title)}</title>"]  # fmt: skip
    lx = label_w
    for label, colour in parts.values():
        out.append(f'<rect x="{lx}" y="4" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{lx + 14}" y="13" font-size="11">{escape(label)}</text>')
        lx += 24 + 7 * len(label) + 20
    for i, (name, values) in enumerate(rows):
        y = top + i * row_h
        out.append(f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" font-size="12">{escape(name)}</text>')
        x = float(label_w)
        for key, (label, colour) in parts.items():
            n = values.get(key, 0)
            if not n:
                continue
            w = plot_w * n / peak
            out.append(f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row_h - 8}" fill="{colour}">'
                       f'<title>{escape(name)} · {escape(label)}: {n}</title></rect>')  # fmt: skip
            x += w
        out.append(f'<text x="{x + 6:.1f}" y="{y + 15}" font-size="11">{sum(values.values())}</text>')
    out.append("</svg>")
    return Markup("".join(out))
