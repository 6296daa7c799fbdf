"""The desk report's charts: matplotlib (Agg, object API) drawn to inline SVG strings.

Server-side, so the page and the file need no script and fetch nothing. Each
chart is deterministic for the same numbers: no date in the SVG, a fixed
hash salt, text kept as text (``svg.fonttype: none``, small and selectable),
and every id prefixed with the chart's name so that six SVGs share one HTML
document without one chart's clip path clipping another's. pyplot is never
used (its global state is not thread-safe); a lock keeps matplotlib's rc
settings to one chart at a time, as the page renders in a worker thread.
"""

from __future__ import annotations

import functools
import io
import re
import threading
import warnings
from datetime import date
from typing import Dict, List, Optional, Sequence, Tuple

# matplotlib 3.5 calls pyparsing's old names, and pyparsing 3.3 says so on every first
# use: noise in `make report`'s output that no one here can act on.
warnings.filterwarnings("ignore", message=r"'\w+' deprecated - use '\w+'",
                        module=r"matplotlib\.")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

from matplotlib.backends.backend_svg import FigureCanvasSVG  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

INK, MUTED, ACCENT, GOOD, BAD = "#1f2933", "#7b8794", "#2f6f5e", "#3f9142", "#c0392b"
SIZE = (4.6, 2.6)  # inches at 100 dpi; the page scales the SVG to its card
# First-response buckets: (upper bound in seconds, label); each starts where the last ends.
BUCKETS: List[Tuple[float, str]] = [(5, "<5s"), (15, "<15s"), (30, "<30s"), (60, "<1m"),
                                    (120, "<2m"), (300, "<5m"), (900, "<15m"),
                                    (float("inf"), "15m+")]
_LOCK = threading.Lock()
_RC = {"svg.fonttype": "none", "font.size": 9, "font.family": "sans-serif",
       "axes.edgecolor": MUTED, "axes.labelcolor": INK, "xtick.color": INK,
       "ytick.color": INK, "axes.spines.top": False, "axes.spines.right": False}


def _label(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _figure(size: Tuple[float, float]) -> Tuple[Figure, object]:
    figure = Figure(figsize=size, dpi=100)
    axes = figure.add_subplot()
    return figure, axes


def _svg(figure: Figure, name: str, title: str) -> str:
    """The figure as an ``<svg>`` element (no XML prolog), ids unique to ``name``."""
    out = io.StringIO()
    FigureCanvasSVG(figure).print_svg(out, metadata={"Date": None, "Title": title})
    svg = out.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r'\bid="', f'id="{name}-', svg)
    svg = re.sub(r"url\(#", f"url(#{name}-", svg)
    svg = re.sub(r'xlink:href="#', f'xlink:href="#{name}-', svg)
    svg = svg.replace("<svg ", f'<svg class=chart data-chart="{name}" role="img" '
                      f'aria-label="{title}" ', 1)
    return svg


def _empty(axes: object, text: str = "No data in this period") -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", color=MUTED,
              transform=axes.transAxes)
    axes.set_yticks([])


def _bars(name: str, title: str, labels: Sequence[str], values: Sequence[float],
          horizontal: bool = False, colour: str = ACCENT, ylabel: str = "",
          every: int = 1) -> str:
    """Bars of ``values``; a vertical chart labels every ``every``-th bar (ticks cost time)."""
    figure, axes = _figure(SIZE)
    if not any(values):
        axes.set_xticks([])
        _empty(axes)
    elif horizontal:
        positions = list(range(len(labels)))[::-1]
        axes.barh(positions, values, color=colour)
        axes.set_yticks(positions)
        axes.set_yticklabels([_label(lbl) for lbl in labels])
        for y, value in zip(positions, values, strict=True):
            axes.text(value, y, f" {value:g}", va="center", color=INK)
        axes.set_xticks([])
        axes.spines["bottom"].set_visible(False)
    else:
        axes.bar(range(len(labels)), values, color=colour)
        axes.set_xticks(range(0, len(labels), every))
        axes.set_xticklabels(labels[::every])
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_ylabel(ylabel)
    figure.subplots_adjust(left=0.32 if horizontal else 0.1, right=0.95, top=0.92, bottom=0.16)
    return _svg(figure, name, title)


def volume_by_hour(by_hour: Sequence[int]) -> str:
    return _bars("volume-hour", "Customer messages by hour of day",
                 [f"{h:02d}" for h in range(24)], by_hour, ylabel="messages", every=3)


def volume_by_channel(by_channel: Sequence[Tuple[str, int]]) -> str:
    return _bars("volume-channel", "Customer messages by channel",
                 [c for c, _ in by_channel], [n for _, n in by_channel], horizontal=True)


def response_buckets(seconds: Sequence[float]) -> Tuple[int, ...]:
    """How many waits fell in each of BUCKETS."""
    counts = [0] * len(BUCKETS)
    for value in seconds:
        counts[next(i for i, (top, _) in enumerate(BUCKETS) if value < top)] += 1
    return tuple(counts)


def first_response(counts: Sequence[int]) -> str:
    return _bars("first-response", "Time to the bot's first reply", [b for _, b in BUCKETS],
                 counts, ylabel="waits")


def escalations(by_reason: Sequence[Tuple[str, int]]) -> str:
    return _bars("escalations", "Handoffs to a person by reason",
                 [r.replace("_", " ") for r, _ in by_reason], [n for _, n in by_reason],
                 horizontal=True, colour="#b7791f")


def csat_distribution(counts: Sequence[int]) -> str:
    """``counts``: how many ratings of 1, 2, 3, 4 and 5."""
    return _bars("csat-distribution", "Satisfaction ratings (1–5)",
                 [str(n) for n in range(1, 6)], counts, ylabel="ratings")


def csat_trend(by_day: Sequence[Tuple[date, int, Optional[float]]]) -> str:
    figure, axes = _figure(SIZE)
    rated = [(i, mean) for i, (_, _, mean) in enumerate(by_day) if mean is not None]
    if rated:
        axes.plot([i for i, _ in rated], [m for _, m in rated], color=ACCENT, marker="o")
        axes.set_ylim(0.8, 5.2)
        axes.set_yticks([1, 2, 3, 4, 5])
        axes.set_ylabel("mean rating")
    else:
        _empty(axes)
    step = max(1, len(by_day) // 7)
    ticks = list(range(0, len(by_day), step))
    axes.set_xticks(ticks)
    axes.set_xticklabels([by_day[i][0].strftime("%d %b") for i in ticks])
    axes.set_xlim(-0.5, max(len(by_day) - 0.5, 0.5))
    figure.subplots_adjust(left=0.12, right=0.95, top=0.92, bottom=0.16)
    return _svg(figure, "csat-trend", "Mean satisfaction rating per day")


DRAW = {"volume_by_hour": volume_by_hour, "volume_by_channel": volume_by_channel,
        "first_response": first_response, "escalations": escalations,
        "csat_distribution": csat_distribution, "csat_trend": csat_trend}


@functools.lru_cache(maxsize=64)
def _drawn(name: str, numbers: tuple) -> str:
    """A chart for ``numbers``, drawn once: the same numbers make the same SVG, and most
    charts of a report reloaded a minute later have not changed (drawing is most of
    the page's time)."""
    return DRAW[name](numbers)


def charts(report: object) -> Dict[str, str]:
    """Every chart of ``report`` (a data.Report), by name, as SVG markup."""
    numbers = {
        "volume_by_hour": tuple(report.by_hour),
        "volume_by_channel": tuple(report.by_channel),
        "first_response": response_buckets(report.first_response_seconds),
        "escalations": tuple(report.escalations),
        "csat_distribution": tuple(report.csat.get(n, 0) for n in range(1, 6)),
        "csat_trend": tuple(report.csat_by_day),
    }
    with _LOCK, matplotlib.rc_context(_RC):
        matplotlib.rcParams["svg.hashsalt"] = "desk-report"
        return {name: _drawn(name, data) for name, data in numbers.items()}
