"""Charts as inline SVG, drawn on the server (no chart library, nothing for the browser to run).

Each chart has a title and a text alternative; the figures are also in the page as text.
"""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

PALETTE = ("#2f6fb0", "#3c9a5f", "#c9822b", "#b0413e", "#7a5aa6", "#3a8c96", "#8a8a8a")
STATE_COLOURS = {
    "RUNNING": "#3c9a5f",
    "ACTIVE": "#3c9a5f",
    "MONITORED": "#3c9a5f",
    "PENDING": "#c9822b",
    "INIT": "#c9822b",
    "HOLD": "#8a8a8a",
    "POWEROFF": "#2f6fb0",
    "DISABLED": "#8a8a8a",
    "OFFLINE": "#8a8a8a",
    "FAILED": "#b0413e",
    "ERROR": "#b0413e",
    "UNKNOWN": "#b0413e",
}


def _text(value: object) -> str:
    """Escape text for SVG markup (a plain str, so concatenation never escapes twice)."""
    return str(escape(str(value)))


def _colour(label: str, index: int) -> str:
    return STATE_COLOURS.get(label.upper(), PALETTE[index % len(PALETTE)])


def bars(title: str, items: Sequence[tuple[str, float]], *, unit: str = "") -> Markup:
    """A horizontal bar chart of labelled counts."""
    if not items:
        return Markup('<p class="empty">{}: none</p>').format(title)
    top = max(value for _, value in items) or 1
    row, label_w, width = 26, 120, 420
    height = row * len(items) + 4
    alt = ", ".join(f"{label} {value:g}{unit}" for label, value in items)
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_text(title)}: {_text(alt)}" preserveAspectRatio="xMinYMin meet">'
    ]
    for i, (label, value) in enumerate(items):
        y = i * row + 2
        w = max(2.0, (width - label_w - 70) * value / top)
        parts.append(
            f'<text x="0" y="{y + 17}" class="lbl">{_text(label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="18" rx="3" '
            f'fill="{_colour(label, i)}"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 17}" class="val">'
            f"{value:g}{_text(unit)}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text in it went through _text


def gauge(title: str, used: float, total: float, unit: str) -> Markup:
    """A used-of-total bar with the figures beside it."""
    share = 0.0 if total <= 0 else min(1.0, used / total)
    colour = "#3c9a5f" if share < 0.7 else ("#c9822b" if share < 0.9 else "#b0413e")
    text = f"{used:g} of {total:g} {unit} ({share * 100:.0f}%)"
    return Markup(
        '<div class="gauge"><span class="gauge-title">{t}</span>'
        '<svg viewBox="0 0 300 16" role="img" aria-label="{t}: {x}" preserveAspectRatio="none">'
        '<rect width="300" height="16" rx="4" fill="#e4e8ee"/>'
        '<rect width="{w:.1f}" height="16" rx="4" fill="{c}"/></svg>'
        '<span class="gauge-text">{x}</span></div>'
    ).format(t=title, x=text, w=300 * share, c=colour)


def line(
    title: str, points: Sequence[tuple[int, float]], *, top: float | None = None, unit: str = ""
) -> Markup:
    """A line chart of (epoch seconds, value) samples, oldest first."""
    if len(points) < 2:
        return Markup('<p class="empty">{}: not enough samples yet</p>').format(title)
    width, height, pad = 480, 140, 30
    t0, t1 = points[0][0], points[-1][0]
    span = max(1, t1 - t0)
    high = top if top and top > 0 else (max(v for _, v in points) or 1)
    coords = " ".join(
        f"{pad + (width - pad - 4) * (t - t0) / span:.1f},"
        f"{height - 18 - (height - 30) * min(v, high) / high:.1f}"
        for t, v in points
    )
    last = points[-1][1]
    return Markup(
        '<figure class="line"><figcaption>{t}: now {last:g}{u} (of {high:g}{u})</figcaption>'
        '<svg viewBox="0 0 {w} {h}" role="img" aria-label="{t} over {mins} minutes, '
        'now {last:g}{u}" preserveAspectRatio="none">'
        '<line x1="{pad}" y1="{base}" x2="{w}" y2="{base}" class="axis"/>'
        '<line x1="{pad}" y1="12" x2="{pad}" y2="{base}" class="axis"/>'
        '<text x="0" y="16" class="val">{high:g}</text><text x="0" y="{base}" class="val">0</text>'
        '<polyline points="{pts}" class="series"/></svg></figure>'
    ).format(
        t=title,
        last=round(last, 2),
        u=unit,
        high=round(high, 2),
        w=width,
        h=height,
        mins=max(1, span // 60),
        pad=pad,
        base=height - 18,
        pts=coords,
    )
