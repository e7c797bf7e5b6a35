"""Latency and throughput over time, shaded by fault windows (Jepsen's latency-raw, latency-quantiles and
rate plots), drawn by matplotlib as SVG.

The raw points are rasterized inside the SVG (axes and text stay vector): 100,000 points as vector
markers would make a page of tens of megabytes that a browser draws slowly. Figures are made with
``matplotlib.figure.Figure`` directly, never pyplot: no global figure state, safe in any thread.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

from splitbrain.harness.report.faults import kind_name
from splitbrain.histories.faults import FaultWindow
from splitbrain.histories.history import History

QUANTILES = (0.5, 0.95, 0.99, 1.0)
MAX_BUCKETS = 80
MIN_BUCKET_S = 0.25
FAULT_COLOURS = {"partition": "#9b59b6", "kill": "#c0392b", "pause": "#2980b9", "clock": "#16a085",
                 "packet": "#d35400"}
TYPE_MARKERS = {"ok": "o", "fail": "x", "info": "^"}
TYPE_STYLES = {"ok": "-", "fail": "--", "info": ":"}
_SVG = {"svg.fonttype": "none", "svg.hashsalt": "splitbrain", "font.size": 9}


def _points(history: History) -> dict[tuple[str, str], tuple[list[float], list[float]]]:
    """(f, type) -> (invoke times in s, latencies in ms) of the completed client ops."""
    out: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    for o in history.operations():
        if o.completion is None:
            continue
        xs, ys = out.setdefault((o.f, o.type), ([], []))
        xs.append(o.invoke.time / 1e9)
        ys.append(max((o.completion.time - o.invoke.time) / 1e6, 1e-3))
    return out


def _bucket_s(duration_s: float) -> float:
    return max(MIN_BUCKET_S, duration_s / MAX_BUCKETS)


def _shade(ax: Any, spans: Sequence[FaultWindow]) -> list[Any]:
    from matplotlib.patches import Patch

    kinds: dict[str, str] = {}
    for s in spans:
        kind = kind_name(s)
        colour = FAULT_COLOURS.get(kind, "#7f8c8d")
        kinds.setdefault(kind, colour)
        ax.axvspan(s.start / 1e9, s.end / 1e9, color=colour, alpha=0.13, lw=0, zorder=0)
    return [Patch(facecolor=c, alpha=0.3, label=k) for k, c in kinds.items()]


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    return buf.getvalue()


def _figure(title: str, ylabel: str) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.4), dpi=100)
    ax = fig.subplots()
    ax.set_title(title, loc="left")
    ax.set_xlabel("time since the test started (s)")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.25)
    return fig, ax


def _colours(fs: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {f: cmap(i % 10) for i, f in enumerate(fs)}


def latency_raw_svg(history: History, spans: Sequence[FaultWindow]) -> str:
    """Every completed op's latency at its invocation time, by f (colour) and outcome (marker)."""
    import matplotlib
    import numpy as np  # arrays, not lists: matplotlib converts a list of 100k floats slowly

    points = _points(history)
    fs = sorted({f for f, _ in points})
    colour = _colours(fs)
    with matplotlib.rc_context(_SVG):
        fig, ax = _figure("latency of every operation", "latency (ms, log)")
        handles = _shade(ax, spans)
        for (f, t), (xs, ys) in sorted(points.items()):
            ax.scatter(np.asarray(xs, dtype=float), np.asarray(ys, dtype=float), s=6 if t == "ok" else 14, marker=TYPE_MARKERS.get(t, "o"), color=colour[f],
                       alpha=0.55, linewidths=0.8, label=f"{f} {t}", rasterized=True)
        ax.set_yscale("log")
        ax.legend(handles=ax.get_legend_handles_labels()[0] + handles, fontsize=7, ncol=2, loc="upper left",
                  bbox_to_anchor=(1.0, 1.0))
        return _svg(fig)


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


def latency_quantiles_svg(history: History, spans: Sequence[FaultWindow], duration_s: float) -> str:
    """Per f, the quantiles of the ok ops' latencies in each time bucket."""
    import matplotlib

    width = _bucket_s(duration_s)
    buckets: dict[str, dict[int, list[float]]] = {}
    for (f, t), (xs, ys) in _points(history).items():
        if t != "ok":
            continue
        per = buckets.setdefault(f, {})
        for x, y in zip(xs, ys, strict=True):
            per.setdefault(int(x // width), []).append(y)
    colour = _colours(sorted(buckets))
    with matplotlib.rc_context(_SVG):
        fig, ax = _figure(f"latency quantiles of ok operations ({width:g} s buckets)", "latency (ms, log)")
        handles = _shade(ax, spans)
        styles = dict(zip(QUANTILES, ("-", "--", "-.", ":"), strict=True))
        for f, per in sorted(buckets.items()):
            keys = sorted(per)
            values = [sorted(per[k]) for k in keys]
            xs = [(k + 0.5) * width for k in keys]
            for q in QUANTILES:
                ax.plot(xs, [_quantile(v, q) for v in values], styles[q], color=colour[f], lw=1.1,
                        label=f"{f} p{q * 100:g}" if q < 1 else f"{f} max")
        if buckets:
            ax.set_yscale("log")
        ax.legend(handles=ax.get_legend_handles_labels()[0] + handles, fontsize=7, ncol=2, loc="upper left",
                  bbox_to_anchor=(1.0, 1.0))
        return _svg(fig)


def rate_svg(history: History, spans: Sequence[FaultWindow], duration_s: float) -> str:
    """Completions per second in each time bucket, by f (colour) and outcome (line style)."""
    import matplotlib

    width = _bucket_s(duration_s)
    n_buckets = max(1, int(duration_s // width) + 1)
    counts: dict[tuple[str, str], list[int]] = {}
    for o in history.operations():
        if o.completion is None:
            continue
        k = min(n_buckets - 1, int(o.completion.time / 1e9 // width))
        counts.setdefault((o.f, o.type), [0] * n_buckets)[k] += 1
    colour = _colours(sorted({f for f, _ in counts}))
    xs = [(k + 0.5) * width for k in range(n_buckets)]
    with matplotlib.rc_context(_SVG):
        fig, ax = _figure(f"throughput ({width:g} s buckets)", "completions per second")
        handles = _shade(ax, spans)
        for (f, t), per in sorted(counts.items()):
            ax.plot(xs, [c / width for c in per], TYPE_STYLES.get(t, "-"), color=colour[f], lw=1.1,
                    label=f"{f} {t}")
        ax.legend(handles=ax.get_legend_handles_labels()[0] + handles, fontsize=7, ncol=2, loc="upper left",
                  bbox_to_anchor=(1.0, 1.0))
        return _svg(fig)
