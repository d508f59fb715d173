"""The drill's chart: success rate over time with the fault windows, as one self-contained
HTML file (inline SVG, no scripts, no dependencies)."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

W, H, PAD = 960, 320, 48
BUCKET_S = 0.5


def buckets(samples: Sequence[Any], t0: float, width_s: float = BUCKET_S) -> list[tuple[float, float, int]]:  # noqa: E501
    """``(seconds since t0, success ratio, requests)`` per bucket with any requests."""
    counts: dict[int, list[int]] = {}
    for s in samples:
        b = int((s.t - t0) / width_s)
        ok_total = counts.setdefault(b, [0, 0])
        ok_total[0] += bool(s.ok)
        ok_total[1] += 1
    return [(b * width_s, ok / total, total) for b, (ok, total) in sorted(counts.items())]


def write_html(path: Path, samples: Sequence[Any], faults: Sequence[Any], t0: float) -> None:
    points = buckets(samples, t0)
    end = max([p[0] for p in points] + [1.0]) + BUCKET_S

    def x(t: float) -> float:
        return PAD + (W - 2 * PAD) * t / end

    def y(ratio: float) -> float:
        return H - PAD - (H - 2 * PAD) * ratio

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
             'font-family="sans-serif" font-size="11">',
             f'<rect x="0" y="0" width="{W}" height="{H}" fill="white"/>']
    for f in faults:
        start = f.injected - t0
        stop = (f.first_standby or (t0 + end)) - t0
        color = "#dbeafe" if f.planned else "#fee2e2"
        parts.append(f'<rect x="{x(start):.1f}" y="{PAD}" width="{max(2.0, x(stop) - x(start)):.1f}" '  # noqa: E501
                     f'height="{H - 2 * PAD}" fill="{color}"/>')
        parts.append(f'<text x="{x(start) + 2:.1f}" y="{PAD - 6}">{html.escape(f.key)}</text>')
    for ratio in (0.0, 0.5, 1.0):
        parts.append(f'<line x1="{PAD}" x2="{W - PAD}" y1="{y(ratio):.1f}" y2="{y(ratio):.1f}" '
                     'stroke="#ddd"/>')
        parts.append(f'<text x="4" y="{y(ratio) + 4:.1f}">{ratio:.0%}</text>')
    line = " ".join(f"{x(t + BUCKET_S / 2):.1f},{y(r):.1f}" for t, r, _ in points)
    parts.append(f'<polyline points="{line}" fill="none" stroke="#2563eb" stroke-width="2"/>')
    parts.append(f'<text x="{W / 2:.0f}" y="{H - 12}" text-anchor="middle">seconds since the '
                 f'load started ({BUCKET_S:g} s buckets)</text>')
    parts.append("</svg>")
    rows = "".join(
        f"<tr><td>{html.escape(f.title)}</td><td>{f.layer}</td>"
        f"<td>{'-' if f.rto_s is None else f'{f.rto_s:.2f} s'}</td><td>{f.budget_s:g} s</td>"
        f"<td>{f.failed_requests}</td><td>{'-' if f.lost_writes is None else f.lost_writes}"
        "</td></tr>" for f in faults)
    path.write_text(
        "<!doctype html><meta charset='utf-8'><title>standby drill</title>"
        "<h1>Failover drill: success rate of writes through the public name</h1>"
        "<p>Red: unplanned fault until the first success on the standby. Blue: planned "
        f"switchover.</p>{''.join(parts)}"
        "<table border='1' cellpadding='4'><tr><th>fault</th><th>layer</th><th>RTO</th>"
        f"<th>budget</th><th>failed requests</th><th>lost writes</th></tr>{rows}</table>")
