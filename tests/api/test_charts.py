"""Dashboard charts: server-side SVG, escaped, no inline style (CSP)."""

from __future__ import annotations

from secmon.api.charts import grouped_hbars, stacked_bars


def test_stacked_bars_draw_one_rect_per_non_zero_value_and_escape_labels() -> None:
    svg = stacked_bars(["2026-11-01", "2026-11-02"], {"a": [1, 0], "b": [2, 3]}, {"a": "<A>", "b": "B"}, title="T & t")
    assert svg.startswith("<svg") and svg.count("<rect") == 3 + 2  # bars + legend swatches
    assert "&lt;A&gt; (1)" in svg and "T &amp; t" in svg and "style=" not in svg
    assert "<script" not in stacked_bars([], {}, {}, title="<script>")


def test_grouped_bars_scale_to_the_largest_row() -> None:
    svg = grouped_hbars([("Login", {"on_time": 2, "breached": 2}), ("Deposit", {"on_time": 1})],
                        {"on_time": ("on time", "#0f0"), "breached": ("late", "#f00")}, title="cases")  # fmt: skip
    assert '<title>Login · late: 2</title>' in svg and ">4</text>" in svg and ">1</text>" in svg
