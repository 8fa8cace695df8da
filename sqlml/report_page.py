"""The model report's page: a gathered :class:`~sqlml.report.Report` drawn as one HTML file that
opens offline.

Charts are plotly figures (plotly is imported here only, when a report is made: ``sqlml --help``
and scoring never load it). plotly.js is inlined once, in the page's head; each figure adds its
own div and the small script that draws it (``include_plotlyjs=False``), so the page makes no
request of any kind. Each chart's div has a stable id (``roc-curve``, ``metric-roc_auc``, ...)
and its title names the SQL function its numbers come from.
"""

from __future__ import annotations

import datetime
import html
import json
import math
from typing import TYPE_CHECKING, Any

from sqlml.report import Bars, Header, Report

if TYPE_CHECKING:
    import pyarrow as pa

HEIGHT = 340  # px, each chart
SERVING_COLOUR, LINE_COLOUR, EVAL_COLOUR = "#d62728", "#1f77b4", "#ff7f0e"
CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #222;
  background: #f6f7f9; }
header, section { background: #fff; margin: 16px; padding: 12px 20px; border-radius: 6px;
  box-shadow: 0 1px 2px rgba(0,0,0,.08); }
h1 { font-size: 1.4em; margin: .2em 0 .4em; } h2 { font-size: 1.15em; margin: .2em 0 .6em; }
table.facts { border-collapse: collapse; font-size: .9em; }
table.facts th { text-align: left; padding: 2px 16px 2px 0; color: #555; font-weight: 600;
  vertical-align: top; }
table.facts td { padding: 2px 0; }
details { margin-top: .6em; font-size: .9em; }
code { font-size: .95em; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(440px, 1fr));
  gap: 12px; }
.chart { min-width: 0; }
.note { color: #666; font-size: .85em; margin: .3em 0 0; }
footer { color: #888; font-size: .8em; margin: 16px 20px; }
"""


def page(report: Report) -> str:
    """The whole page, plotly.js inlined once."""
    from plotly.offline import get_plotlyjs  # lazy: only when a report is made

    title = f"sqlml report: {report.header.model}"
    sections = [s for s in _sections(report) if s]
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{html.escape(title)}</title>",
            f"<style>{CSS}</style>",
            f'<script type="text/javascript">{get_plotlyjs()}</script>',
            "</head><body>",
            _header(report.header),
            *sections,
            f"<footer>Made by sqlml on {stamp}.</footer>",
            "</body></html>",
        ]
    )


def _sections(report: Report) -> list[str]:
    return [
        _section("Metrics by version", "metrics", _metric_charts(report)),
        _section("Evaluation", "evaluation", _evaluation_charts(report)),
        _section("Features", "features", _feature_charts(report)),
        _section("Training", "training", _training_charts(report)),
        _section("Trials", "trials", [_trials(report.trials)] if report.trials else []),
        _section("Skew of logged inputs", "skew", [_skew(report)] if report.skew else []),
    ]


def _section(title: str, anchor: str, charts: list[str]) -> str:
    if not charts:
        return ""
    body = "".join(f'<div class="chart">{c}</div>' for c in charts)
    heading = f"<h2>{html.escape(title)}</h2>"
    return f'<section id="section-{anchor}">{heading}<div class="charts">{body}</div></section>'


# -- the header ---------------------------------------------------------------------------------


def _header(header: Header) -> str:
    deployment = header.deployment
    state = [f"version {header.version} is {header.status}"]
    others = [
        f"version {v} {status}" + (f" ({weight:g}%)" if weight is not None else "")
        for v, status, weight in header.versions
        if v != header.version and status in ("serving", "traffic", "shadow")
    ]
    weight = next((w for v, _, w in header.versions if v == header.version), None)
    if weight is not None:
        state[0] += f" with {weight:g}% of the traffic"
    if deployment is not None:
        state.append(
            f"last change: {deployment['action']} of version {deployment['version']}"
            f" at {_time(deployment['deployed_at'])}"
            + (f" by {deployment['role']}" if deployment.get("role") else "")
        )
    facts = [
        ("model", header.model),
        ("model type", header.model_type),
        ("version", str(header.version)),
        ("serving state", "; ".join(state + others)),
        ("versions", ", ".join(str(v) for v, _, _ in header.versions)),
        ("version created", _time(header.created_at)),
        ("model created", _time(header.first_created_at)),
    ]
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts)
    options = "".join(
        f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(json.dumps(v))}</code></td></tr>"
        for k, v in sorted(header.options.items())
        if v is not None
    )
    return (
        f"<header><h1>{html.escape(header.model)}</h1>"
        f'<table class="facts">{rows}</table>'
        f'<details><summary>options ({len(header.options)})</summary><table class="facts">'
        f"{options}</table></details></header>"
    )


def _time(value: Any) -> str:
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return "" if value is None else str(value)


# -- the charts ---------------------------------------------------------------------------------


def _figure(figure: Any, chart_id: str, title: str, **layout: Any) -> str:
    """One figure as a div and its drawing script (plotly.js is in the page's head)."""
    import plotly.io as pio

    figure.update_layout(
        title={"text": title, "x": 0.02},
        height=HEIGHT,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        template="plotly_white",
        **layout,
    )
    config = {"displaylogo": False, "responsive": True}
    text: str = pio.to_html(
        figure, full_html=False, include_plotlyjs=False, div_id=chart_id, config=config
    )
    return text


def _go() -> Any:
    import plotly.graph_objects as go

    return go


def _metric_charts(report: Report) -> list[str]:
    """One chart per metric over the versions, the reported version marked."""
    go, charts = _go(), []
    version = report.header.version
    for name, points in report.metrics.items():
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        figure = go.Figure(
            go.Scatter(x=xs, y=ys, mode="lines+markers", name=name, line={"color": LINE_COLOUR})
        )
        marked = [(x, y) for x, y in points if x == version]
        if marked:
            figure.add_trace(
                go.Scatter(
                    x=[marked[0][0]],
                    y=[marked[0][1]],
                    mode="markers",
                    name=f"version {version} ({report.header.status})",
                    marker={"color": SERVING_COLOUR, "size": 13, "symbol": "star"},
                )
            )
        charts.append(
            _figure(
                figure,
                f"metric-{name}",
                f"{name} by version",
                xaxis={"title": {"text": "version"}, "tickmode": "array", "tickvals": xs},
                showlegend=True,
                legend={"orientation": "h", "y": -0.25},
            )
        )
    return charts


def _evaluation_charts(report: Report) -> list[str]:
    charts = []
    if report.roc is not None:
        charts += _curves(report.roc)
    if report.matrix is not None:
        charts.append(_matrix(report.matrix))
    return charts


def _curves(roc: pa.Table) -> list[str]:
    """The ROC curve and the precision-recall curve, from ML.ROC_CURVE's counts."""
    go = _go()
    rows = sorted(roc.to_pylist(), key=lambda r: (r["false_positive_rate"], r["recall"]))
    fpr = [r["false_positive_rate"] for r in rows]
    recall = [r["recall"] for r in rows]
    auc = _trapezoid(fpr, recall)
    hover = "threshold %{customdata:.4f}<br>x %{x:.4f}<br>y %{y:.4f}<extra></extra>"
    roc_figure = go.Figure(
        [
            go.Scatter(
                x=fpr,
                y=recall,
                mode="lines+markers",
                marker={"size": 4},
                customdata=[r["threshold"] for r in rows],
                hovertemplate=hover,
                name="ROC",
            ),
            go.Scatter(
                x=[0, 1],
                y=[0, 1],
                mode="lines",
                line={"dash": "dash", "color": "#999"},
                name="chance",
            ),
        ]
    )
    by_recall = sorted(rows, key=lambda r: (r["recall"], -r["threshold"]))
    points = [
        (r["recall"], r["true_positives"] / (r["true_positives"] + r["false_positives"]))
        for r in by_recall
        if r["true_positives"] + r["false_positives"] > 0
    ]
    pr_figure = go.Figure(
        go.Scatter(
            x=[p[0] for p in points],
            y=[p[1] for p in points],
            mode="lines+markers",
            marker={"size": 4},
            name="precision",
        )
    )
    axes = {"range": [-0.02, 1.02]}
    return [
        _figure(
            roc_figure,
            "roc-curve",
            f"ROC curve (ML.ROC_CURVE), area {auc:.3f}",
            xaxis={"title": {"text": "false positive rate"}, **axes},
            yaxis={"title": {"text": "recall"}, **axes},
            showlegend=False,
        ),
        _figure(
            pr_figure,
            "pr-curve",
            "Precision-recall curve (ML.ROC_CURVE)",
            xaxis={"title": {"text": "recall"}, **axes},
            yaxis={"title": {"text": "precision"}, **axes},
            showlegend=False,
        ),
    ]


def _trapezoid(xs: list[float], ys: list[float]) -> float:
    return sum((xs[i] - xs[i - 1]) * (ys[i] + ys[i - 1]) / 2 for i in range(1, len(xs)))


def _matrix(matrix: pa.Table) -> str:
    """ML.CONFUSION_MATRIX as a heatmap: expected labels down, predicted classes across."""
    go = _go()
    names = matrix.column_names
    expected = [str(v) for v in matrix.column(names[0]).to_pylist()]
    predicted = names[1:]
    counts = [[int(v or 0) for v in matrix.column(n).to_pylist()] for n in predicted]
    z = [list(row) for row in zip(*counts, strict=True)]
    figure = go.Figure(
        go.Heatmap(
            z=z,
            x=predicted,
            y=expected,
            colorscale="Blues",
            text=z,
            texttemplate="%{text}",
            hovertemplate="expected %{y}<br>predicted %{x}<br>%{z} rows<extra></extra>",
        )
    )
    return _figure(
        figure,
        "confusion-matrix",
        "Confusion matrix (ML.CONFUSION_MATRIX)",
        xaxis={"title": {"text": "predicted"}, "type": "category"},
        yaxis={"title": {"text": "expected"}, "type": "category", "autorange": "reversed"},
    )


def _feature_charts(report: Report) -> list[str]:
    charts = []
    if report.importance is not None:
        charts.append(_bars(report.importance, "feature-importance"))
    if report.explained is not None:
        charts.append(_bars(report.explained, "global-explain"))
    return charts


def _bars(bars: Bars, chart_id: str, horizontal: bool = True) -> str:
    go = _go()
    if horizontal:  # (the largest on top)
        trace = go.Bar(x=bars.values[::-1], y=bars.names[::-1], orientation="h")
        axes = {"xaxis": {"title": {"text": bars.source}}, "yaxis": {"type": "category"}}
    else:
        trace = go.Bar(x=bars.names, y=bars.values)
        axes = {"xaxis": {"type": "category"}, "yaxis": {"title": {"text": bars.source}}}
    return _figure(
        go.Figure(trace), chart_id, f"{bars.title} ({bars.source.split(':')[0]})", **axes
    )


def _training_charts(report: Report) -> list[str]:
    charts = []
    if report.loss is not None:
        charts.append(_loss(report.loss))
    if report.clusters is not None:
        charts.append(_bars(report.clusters, "cluster-sizes", horizontal=False))
    return charts


def _loss(loss: pa.Table) -> str:
    go = _go()
    iterations = loss.column("iteration").to_pylist()
    traces = []
    for name, colour in (("loss", LINE_COLOUR), ("eval_loss", EVAL_COLOUR)):
        if name in loss.column_names and any(v is not None for v in loss.column(name).to_pylist()):
            traces.append(
                go.Scatter(
                    x=iterations,
                    y=loss.column(name).to_pylist(),
                    mode="lines+markers",
                    name=name,
                    line={"color": colour},
                )
            )
    return _figure(
        go.Figure(traces),
        "training-loss",
        "Training loss by iteration (ML.TRAINING_INFO)",
        xaxis={"title": {"text": "iteration"}},
        yaxis={"title": {"text": "loss"}},
    )


def _trials(trials: pa.Table) -> str:
    """ML.TRIAL_INFO: each trial's objective (hparam_tuning_evaluation_metrics) and losses,
    its hyperparameters on hover, the optimal trial marked."""
    go = _go()
    table = trials.to_pylist()
    ids = [row["trial_id"] for row in table]
    hover = [_hyperparameters(row.get("hyperparameters")) for row in table]
    series: dict[str, list[float | None]] = {}
    for i, row in enumerate(table):
        values = dict(_parsed(row.get("hparam_tuning_evaluation_metrics")))
        values |= {n: row.get(n) for n in ("training_loss", "eval_loss")}
        for name, value in values.items():
            if _finite(value):
                series.setdefault(name, [None] * len(table))[i] = float(value)
    figure = go.Figure(
        [
            go.Scatter(
                x=ids,
                y=ys,
                mode="lines+markers",
                name=name,
                text=hover,
                hovertemplate="trial %{x}<br>%{y:.4f}<br>%{text}<extra>" + name + "</extra>",
            )
            for name, ys in series.items()
        ]
    )
    for row in table:
        if row.get("is_optimal"):
            figure.add_vline(
                x=row["trial_id"],
                line={"dash": "dot", "color": SERVING_COLOUR},
                annotation_text=f"optimal: trial {row['trial_id']}",
            )
    return _figure(
        figure,
        "trials",
        "Trials (ML.TRIAL_INFO)",
        xaxis={"title": {"text": "trial_id"}, "tickmode": "array", "tickvals": ids},
        yaxis={"title": {"text": "objective and loss"}},
    )


def _parsed(value: Any) -> dict[str, Any]:
    """A JSON object column (text) or a struct (dict); {} for NULL."""
    found = json.loads(value) if isinstance(value, str) else value
    return dict(found) if isinstance(found, dict) else {}


def _hyperparameters(value: Any) -> str:
    return ", ".join(
        f"{k} = {v:.4g}" if _finite(v) else f"{k} = {v}" for k, v in _parsed(value).items()
    )


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _skew(report: Report) -> str:
    """Each feature's skew statistic per day of the log, the thresholds dashed."""
    go = _go()
    series: dict[str, tuple[str, list[str], list[float | None]]] = {}
    thresholds: set[float] = set()
    days = [day.isoformat() for day, _ in report.skew]
    for i, (_, rows) in enumerate(report.skew):
        for row in rows.to_pylist():
            empty: list[float | None] = [None] * len(days)
            ys = series.setdefault(row["input"], (row["metric"], days, empty))[2]
            ys[i] = row["value"]
            thresholds.add(float(row["threshold"]))
    figure = go.Figure(
        [
            go.Scatter(x=xs, y=ys, mode="lines+markers", name=f"{name} ({_short(metric)})")
            for name, (metric, xs, ys) in sorted(series.items())
        ]
    )
    for threshold in sorted(thresholds):
        figure.add_hline(
            y=threshold,
            line={"dash": "dash", "color": SERVING_COLOUR},
            annotation_text=f"threshold {threshold:g}",
        )
    return _figure(
        figure,
        "skew-by-day",
        "Skew of logged inputs by day (ML.VALIDATE_DATA_SKEW)",
        xaxis={"title": {"text": "day logged (UTC)"}, "type": "category"},
        yaxis={"title": {"text": "distance from training"}, "rangemode": "tozero"},
    )


def _short(metric: str) -> str:
    return {"JENSEN_SHANNON_DIVERGENCE": "Jensen-Shannon", "L_INFTY": "L-infinity"}.get(
        metric, metric
    )
