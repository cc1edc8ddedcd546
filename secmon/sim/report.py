"""How ``secmon eval`` shows its results: a text table for the terminal and one
self-contained HTML file (inline CSS, plots as base64 PNG) that can be mailed or attached
to an issue without a web server.
"""

from __future__ import annotations

import base64
import html
import io
from collections import Counter
from collections.abc import Sequence
from typing import Any

from secmon.contract import parse_ts_ms
from secmon.sim.evaluate import (
    PRECISION_BAR,
    RECALL_BAR,
    Evaluation,
    KindResult,
    PaysimEvaluation,
    ScoreCurves,
)

COLUMNS = ("kind", "labels", "findings", "TP", "FP", "neutral", "FN", "dup", "prec", "recall", "F1",
           "delay p50", "delay p95", "status")  # fmt: skip


def fmt_ratio(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def fmt_delay(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    sign, s = ("-" if seconds <= -0.5 else ""), abs(seconds)
    if s < 120:
        return f"{sign}{s:.0f}s"
    if s < 7200:
        return f"{sign}{s / 60:.1f}m"
    return f"{sign}{s / 3600:.1f}h"


def status(k: KindResult) -> str:
    if not k.has_detector:
        return "no detector" if k.labels else ""
    if not k.labels and not k.findings:
        return ""
    short = k.below_bar
    return "BELOW BAR: " + " and ".join(short) if short else "ok"


def table_rows(ev: Evaluation) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for k in ev.kinds.values():
        if not (k.labels or k.findings or k.has_detector):
            continue
        rows.append((
            k.kind, str(k.labels), str(k.findings), str(k.tp), str(k.fp), str(k.neutral), str(k.fn),
            str(k.duplicates), fmt_ratio(k.precision), fmt_ratio(k.recall), fmt_ratio(k.f1),
            fmt_delay(k.delay_s(0.5)), fmt_delay(k.delay_s(0.95)), status(k),
        ))  # fmt: skip
    return rows


def text_table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i]) for i in range(len(header))]
    def line(r: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i in (0, len(r) - 1) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip()
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def negative_rows(ev: Evaluation) -> list[tuple[str, str, str, str]]:
    """Per hard-negative scenario: how many instances, how many fired, which kinds."""
    total: Counter[str] = Counter(n.scenario for n in ev.negatives)
    fired: Counter[str] = Counter()
    kinds: dict[str, Counter[str]] = {}
    for hit in ev.negative_hits.values():
        fired[hit.negative.scenario] += 1
        kinds.setdefault(hit.negative.scenario, Counter()).update(hit.kinds)
    return [
        (name, str(total[name]), str(fired[name]),
         ", ".join(f"{k}×{n}" for k, n in sorted(kinds.get(name, Counter()).items())) or "-")
        for name in sorted(total)
    ]  # fmt: skip


def text_report(ev: Evaluation, meta: dict[str, Any]) -> str:
    out = [text_table(table_rows(ev), COLUMNS), ""]
    below = ev.below_bar()
    bar = f"bar: recall ≥ {RECALL_BAR}, precision ≥ {PRECISION_BAR}"
    if below:
        out.append(f"BELOW THE BAR ({bar}): " + ", ".join(f"{k.kind} ({' and '.join(k.below_bar)})" for k in below))
    else:
        out.append(f"every kind with a detector meets the bar ({bar})")
    missing = [k.kind for k in ev.kinds.values() if k.labels and not k.has_detector]
    if missing:
        out.append(f"no detector registered for: {', '.join(missing)}")
    out += ["", "hard negatives (fired = a must_not kind was raised on it):",
            text_table(negative_rows(ev), ("scenario", "count", "fired", "kinds raised"))]  # fmt: skip
    if meta.get("curves_note"):
        out += ["", meta["curves_note"]]
    return "\n".join(out)


def paysim_text(pe: PaysimEvaluation) -> str:
    rows = [
        (k.kind, str(k.findings), str(k.naming_tx), str(k.tp), fmt_ratio(k.precision),
         fmt_ratio(len(k.fraud_found) / pe.frauds if pe.frauds else None))
        for k in sorted(pe.kinds.values(), key=lambda k: k.kind)
    ]  # fmt: skip
    rows.append(("ALL", str(sum(k.findings for k in pe.kinds.values())), str(sum(k.naming_tx for k in pe.kinds.values())),
                 str(sum(k.tp for k in pe.kinds.values())), fmt_ratio(pe.precision), fmt_ratio(pe.recall)))  # fmt: skip
    head = (f"PaySim: {pe.frauds} fraudulent transactions, {len(pe.fraud_found)} named by a finding; "
            f"{pe.accounts_flagged} of {pe.fraud_accounts} fraud accounts have a finding")  # fmt: skip
    return head + "\n" + text_table(rows, ("kind", "findings", "naming a tx", "fraud tx", "precision", "recall"))


# ============================================================================ plots
def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def curves_png(curves: ScoreCurves, title: str) -> str:
    from sklearn.metrics import precision_recall_curve, roc_curve

    plt = _pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    precision, recall, _ = precision_recall_curve(curves.y_true, curves.y_score)
    ax1.step(recall, precision, where="post")
    ax1.set(xlabel="recall", ylabel="precision", xlim=(0, 1.02), ylim=(0, 1.02),
            title=f"PR (AP {curves.average_precision:.3f})" if curves.average_precision is not None else "PR")  # fmt: skip
    fpr, tpr, _ = roc_curve(curves.y_true, curves.y_score)
    ax2.plot(fpr, tpr)
    ax2.plot([0, 1], [0, 1], linestyle=":", color="grey")
    ax2.set(xlabel="false positive rate", ylabel="true positive rate", xlim=(0, 1), ylim=(0, 1.02),
            title=f"ROC (AUC {curves.roc_auc:.3f})" if curves.roc_auc is not None else "ROC")  # fmt: skip
    fig.suptitle(title)
    return _png(fig)


def timeline_png(ev: Evaluation, anchors_ms: Sequence[int]) -> str | None:
    """Findings per hour of ``detected_at``, stacked by kind, with labelled anchors per hour."""
    if not ev.findings and not anchors_ms:
        return None
    plt = _pyplot()
    hours = [parse_ts_ms(f.detected_at) // 3_600_000 for f in ev.findings]
    first = min([*hours, *(a // 3_600_000 for a in anchors_ms)])
    last = max([*hours, *(a // 3_600_000 for a in anchors_ms)])
    n = last - first + 1
    by_kind: Counter[str] = Counter(f.kind for f in ev.findings)
    top = [k for k, _ in by_kind.most_common(10)]
    fig, ax = plt.subplots(figsize=(11, 4))
    bottom = [0] * n
    for kind in [*top, "other"] if len(by_kind) > len(top) else top:
        counts = [0] * n
        for f, h in zip(ev.findings, hours, strict=True):
            if f.kind == kind or (kind == "other" and f.kind not in top):
                counts[h - first] += 1
        ax.bar(range(n), counts, bottom=bottom, label=kind, width=1.0)
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    labelled = [0] * n
    for a in anchors_ms:
        labelled[a // 3_600_000 - first] += 1
    ax.step(range(n), labelled, where="mid", color="black", label="labelled scenarios (anchor)")
    ax.set(xlabel="hours since start", ylabel="per hour", title="findings over time by kind")
    ax.legend(fontsize=7, ncol=2, loc="upper right")
    return _png(fig)


def delays_png(ev: Evaluation) -> str | None:
    data = [(k.kind, [d / 60_000 for d in k.delays_ms]) for k in ev.kinds.values() if k.delays_ms]
    if not data:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(data) + 1.2))
    ax.boxplot([d for _, d in data], orientation="horizontal", tick_labels=[k for k, _ in data])
    ax.set_xscale("symlog", linthresh=1.0)
    ax.set(xlabel="detection delay, minutes (detected_at − anchor; symlog)", title="detection delay by kind")
    return _png(fig)


# ============================================================================ HTML
_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child{text-align:left}
tr.bad td{background:#fde2e2}tr.ok td:last-child{color:#1a7f37}
td.l{text-align:left}code{font-size:12px}.note{color:#555}
"""


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], classes: Sequence[str] | None = None) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for i, r in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _img(b64: str | None, alt: str) -> str:
    return f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}"></p>' if b64 else ""


def html_report(
    ev: Evaluation, meta: dict[str, Any], curves: ScoreCurves | None, anchors_ms: Sequence[int]
) -> str:
    rows = table_rows(ev)
    classes = ["bad" if r[-1].startswith("BELOW") else ("ok" if r[-1] == "ok" else "") for r in rows]
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>secmon eval — {html.escape(meta['dataset'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>secmon eval — <code>{html.escape(meta['dataset'])}</code></h1>",
        "<p class='note'>" + html.escape(meta["summary"]) + "</p>",
        f"<h2>Per kind</h2><p class='note'>bar: recall ≥ {RECALL_BAR}, precision ≥ {PRECISION_BAR}; matching slack "
        f"{ev.slack_ms // 60_000} min; delay = detected_at − anchor.</p>",
        _table(COLUMNS, rows, classes),
        "<h2>Hard negatives</h2>",
        _table(("scenario", "count", "fired", "kinds raised"), negative_rows(ev)),
        "<h2>Anomaly score of anomalous_transaction</h2>",
    ]
    if curves is not None:
        parts.append(_img(curves_png(curves, f"explanation[{curves.score_key!r}] vs labelled anomalous transactions"),
                          "PR and ROC curves"))  # fmt: skip
        parts.append(f"<p class='note'>{curves.positives} labelled anomalous transactions among {len(curves.y_true)}; "
                     f"{curves.flagged} transactions flagged. Unflagged transactions sit below every emitted score.</p>")  # fmt: skip
    parts.append(f"<p class='note'>{html.escape(meta.get('curves_note') or '')}</p>")
    parts += ["<h2>Findings over time</h2>", _img(timeline_png(ev, anchors_ms), "findings over time"),
              _img(delays_png(ev), "detection delays")]  # fmt: skip
    parts.append("<h2>False positives (up to 5 per kind)</h2>")
    fp_rows = [
        (f.kind, f.finding_id, f.account_id or "-", _subject(f.subject), f.detected_at, f.summary)
        for kind in sorted(ev.false_positives) for f in ev.false_positives[kind][:5]
    ]  # fmt: skip
    parts.append(_table(("kind", "finding_id", "account", "subject", "detected_at", "summary"), fp_rows) if fp_rows else "<p>none</p>")
    parts.append("<h2>Missed scenarios (up to 10 per kind)</h2>")
    fn_rows = [
        (s.kind, s.id, s.variant, s.account_id or "-", str(len(s.accounts)))
        for kind in sorted(ev.missed) for s in ev.missed[kind][:10]
    ]  # fmt: skip
    parts.append(_table(("kind", "scenario", "variant", "account", "accounts"), fn_rows) if fn_rows else "<p>none</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def paysim_html(pe: PaysimEvaluation, meta: dict[str, Any], curves: ScoreCurves | None) -> str:
    text = paysim_text(pe)
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>secmon eval — {html.escape(meta['dataset'])}</title>",
        f"<style>{_CSS}</style></head><body><h1>secmon eval (PaySim) — <code>{html.escape(meta['dataset'])}</code></h1>",
        "<p class='note'>" + html.escape(meta["summary"]) + "</p>",
        f"<pre>{html.escape(text)}</pre>",
    ]
    if curves is not None:
        parts.append(_img(curves_png(curves, f"explanation[{curves.score_key!r}] vs PaySim isFraud"), "PR and ROC curves"))
    parts.append(f"<p class='note'>{html.escape(meta.get('curves_note') or '')}</p></body></html>")
    return "\n".join(parts)


def _subject(subject: Any) -> str:
    fields = {k: getattr(subject, k) for k in ("ip", "asn", "network", "address", "tx_id", "reason")}
    return " ".join(f"{k}={v}" for k, v in fields.items() if v is not None) or "-"
