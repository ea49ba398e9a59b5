"""Line charts for asset metadata: a PNG rendered with matplotlib and embedded in Markdown, which
the Dagster UI shows on the asset's page (bed managers look at a curve rather than a table).

Charts carry figures only (occupancy, rates per department or rule), never a patient value.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterable
from datetime import datetime

from dagster import MetadataValue


def line_chart(
    title: str, points: Iterable[tuple[str, datetime | None, float]], y_label: str
) -> MetadataValue:
    """A chart of one line per series from (series, x, share) points, the shares shown as
    percentages, as Markdown metadata.

    The image is small (a few tens of kB) because the event log stores it with every
    materialization."""
    import matplotlib

    matplotlib.use("Agg")  # no display: render to a buffer
    from matplotlib import dates as mdates
    from matplotlib import pyplot as plt
    from matplotlib.ticker import PercentFormatter

    series: dict[str, list[tuple[datetime, float]]] = {}
    for name, x, y in points:
        if x is not None:
            series.setdefault(name, []).append((x, y))
    if not series:
        return MetadataValue.md(f"**{title}**: no data yet")
    figure, axes = plt.subplots(figsize=(8, 3.6), dpi=80)
    try:
        for name in sorted(series):
            xs, ys = zip(*sorted(series[name]), strict=True)
            axes.plot(xs, ys, marker="." if len(xs) < 30 else None, linewidth=1.4, label=name)
        axes.set_title(title, fontsize=11)
        axes.set_ylabel(y_label)
        axes.grid(alpha=0.3)
        axes.yaxis.set_major_formatter(PercentFormatter(1.0))
        axes.xaxis.set_major_formatter(mdates.DateFormatter("%d %b %H:%M"))
        figure.autofmt_xdate()
        axes.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    finally:
        plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return MetadataValue.md(f"![{title}](data:image/png;base64,{encoded})")
