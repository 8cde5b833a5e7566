"""The weekly report as one self-contained HTML page: summary and contents first, tables that fit the page."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

from shadowgate.report.render import ANALYST_PART
from shadowgate.report.render import HEADLINE_LABELS
from shadowgate.report.render import MANAGER
from shadowgate.report.render import UNKNOWN_COST
from shadowgate.report.render import _numeric
from shadowgate.report.render import anchor
from shadowgate.report.render import change_text
from shadowgate.report.render import contents
from shadowgate.report.render import fmt
from shadowgate.report.render import headline_text
from shadowgate.report.render import text_sections
from shadowgate.report.render import title_line
from shadowgate.report.runner import Report
from shadowgate.report.runner import Section
from shadowgate.report.summary import summary

PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1")
# Tables take the page's width and wrap their text cells anywhere, down to a few characters (more for
# the long free-text columns); numbers, days and statuses never wrap. So no table is wider than its
# container; .wide scrolls as a last resort only.
LONG_TEXT = {"notes", "meaning", "account_hints", "user_names", "main_apps", "wire_formats", "tools"}
CSS = """
body{font:14px/1.4 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#222;margin:24px auto;max-width:1100px;padding:0 16px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}h2.part{font-size:20px;border-bottom:3px solid #4e79a7}
.wide{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;margin:8px 0;font-size:12.5px;width:100%}th,td{border:1px solid #ddd;padding:3px 6px}
th{background:#f3f5f8;text-align:left;vertical-align:bottom}td{vertical-align:top;overflow-wrap:anywhere;min-width:5em}
td.long{min-width:9em}td.sanctioned,td.unapproved,td.unknown{overflow-wrap:normal}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}td.d{white-space:nowrap}td.n,td.d{min-width:0}
.summary{background:#f7f9fc;border:1px solid #dde3ec;border-radius:6px;padding:6px 16px 6px 30px}.summary li{margin:4px 0}
nav ol{columns:2;column-gap:32px;margin:6px 0}nav li{break-inside:avoid}
.cards{display:flex;flex-wrap:wrap;gap:10px}.card{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:140px}
.card b{display:block;font-size:20px}.up{color:#b22}.down{color:#282}.muted{color:#777}
.sanctioned{color:#282}.unapproved{color:#b22;font-weight:bold}.unknown{color:#a60}
svg{display:block;margin:8px 0;max-width:100%;height:auto}
@media (max-width:1000px){table.many th{overflow-wrap:anywhere}td{min-width:3em}td.long{min-width:6em}table{font-size:11.5px}th,td{padding:2px 4px}}
@media print{body{margin:0;max-width:none}h2{page-break-after:avoid}table{page-break-inside:auto}nav ol{columns:1}}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def svg_stacked(
    days: list[str],
    series: dict[str, list[int]],
    width: int = 720,
    height: int = 220,
    aria: str = "Daily requests by app",
    colours: tuple[str, ...] = (),
) -> str:
    """Daily stacked bars: one bar per day, one colour per series (app); a long period labels every few days."""
    colours = colours or PALETTE
    pad_l, pad_b, legend_h = 50, 22, 18 * ((len(series) + 3) // 4)
    totals = [sum(v[i] for v in series.values()) for i in range(len(days))]
    top = max(totals, default=0) or 1
    plot_h = height - pad_b - 10
    bar_w = (width - pad_l) / max(len(days), 1)
    parts = [
        f'<svg width="{width}" height="{height + legend_h}" viewBox="0 0 {width} {height + legend_h}" '
        f'role="img" aria-label="{_e(aria)}">',
        f'<text x="0" y="12" font-size="11">{top:,}</text>',
        f'<line x1="{pad_l}" y1="{10 + plot_h}" x2="{width}" y2="{10 + plot_h}" stroke="#999"/>',
    ]
    label_every = max(1, -(-len(days) // 14))  # at most 14 day labels, so they never overlap
    for i, day in enumerate(days):
        y = float(10 + plot_h)
        for j, (app, values) in enumerate(series.items()):
            h = values[i] / top * plot_h
            if h <= 0:
                continue
            y -= h
            parts.append(
                f'<rect x="{pad_l + i * bar_w + 2:.1f}" y="{y:.1f}" width="{bar_w - 4:.1f}" height="{h:.1f}" '
                f'fill="{colours[j % len(colours)]}"><title>{_e(day)} {_e(app)}: {values[i]:,}</title></rect>'
            )
        if i % label_every == 0:
            parts.append(
                f'<text x="{pad_l + (i + 0.5) * bar_w:.1f}" y="{height - 6}" font-size="10" '
                f'text-anchor="middle">{_e(day[5:])}</text>'
            )
    for j, app in enumerate(series):
        x, y = 10 + (j % 4) * 175, height + 14 + 18 * (j // 4)
        parts.append(
            f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{colours[j % len(colours)]}"/>'
            f'<text x="{x + 14}" y="{y}" font-size="11">{_e(app[:26])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def svg_bars(items: list[tuple[str, float | None]], label, aria: str, width: int = 720, colour: str = "#4e79a7") -> str:
    """Horizontal bars with a label and a value each; an unknown value (None) has no bar and reads –."""
    row_h, pad_l = 20, 200
    top = max((v for _, v in items if v is not None), default=0) or 1
    height = row_h * len(items) + 6
    parts = [
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{_e(aria)}">'
    ]
    for i, (name, value) in enumerate(items):
        w = max(value or 0, 0) / top * (width - pad_l - 90)
        y = i * row_h + 3
        text = UNKNOWN_COST if value is None else label(value)
        parts.append(
            f'<text x="{pad_l - 6}" y="{y + 13}" font-size="11" text-anchor="end">{_e(str(name)[:32])}</text>'
            f'<rect x="{pad_l}" y="{y}" width="{w:.1f}" height="{row_h - 5}" fill="{colour}"/>'
            f'<text x="{pad_l + w + 4:.1f}" y="{y + 13}" font-size="11">{_e(text)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _html_table(s: Section) -> str:
    if not s.rows:
        return '<p class="muted">none</p>'
    numeric = {c for c in s.columns if _numeric(s, c)}
    head = "".join(f"<th>{_e(c.replace('_', ' '))}</th>" for c in s.columns)  # a space lets a long name wrap
    body = []
    for row in s.rows:
        cells = []
        for c, v in zip(s.columns, row):
            cls = (
                ' class="n"'
                if c in numeric
                else f' class="{_e(v)}"'
                if c == "status"
                else ' class="d"'
                if isinstance(v, dt.date)
                else ' class="long"'
                if c in LONG_TEXT
                else ""
            )
            cells.append(f"<td{cls}>{_e(fmt(c, v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    many = ' class="many"' if len(s.columns) > 10 else ""  # on a narrow page its headers wrap inside words too
    return f'<div class="wide"><table{many}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def charts(report: Report) -> list[tuple[str, str]]:
    by_app = report.section("cost", "daily_by_app")
    days: list[str] = []
    series: dict[str, dict[str, int]] = {}
    day = report.period.start
    while day < report.period.end:
        days.append(day.isoformat())
        day += dt.timedelta(days=1)
    for r in by_app.records():
        series.setdefault(r["app"], {})[r["day"]] = r["requests"]
    stacked = {app: [vals.get(d, 0) for d in days] for app, vals in series.items()}
    cost = [(r["provider"], r["cost_usd"]) for r in report.section("cost", "by_provider").records()]
    users = [(r["user"], r["requests"]) for r in report.section("unapproved", "users").records()]
    return [
        ("Daily requests by app", svg_stacked(days, stacked)),
        ("Cost by provider", svg_bars(cost, lambda v: fmt("cost_usd", v), "Cost by provider")),
        (
            "Top users of apps not sanctioned (requests)",
            svg_bars(users, lambda v: f"{v:,}", "Top users of apps not sanctioned", colour="#e15759"),
        ),
    ]


def to_html(report: Report) -> str:
    cards = []
    for key, metric in report.headline.items():
        change = metric["change"] or 0
        cls = "up" if change > 0 else "down" if change < 0 else "muted"
        cards.append(
            f'<div class="card">{_e(HEADLINE_LABELS[key])}<b>{_e(headline_text(report, key))}</b>'
            f'<span class="{cls}">{_e(change_text(key, metric))}</span></div>'
        )
    toc = []
    for key, title, part in contents(report):
        if key == "headline":
            toc.append('<li><a href="#headline">Headline</a></li><li><a href="#charts">Charts</a></li>')
        else:
            toc.append(f'<li><a href="#{_e(key)}">{"<b>" if part else ""}{_e(title)}{"</b>" if part else ""}</a></li>')
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title_line(report))}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(title_line(report))}</h1>",
        f'<p class="muted">Data: {_e(report.data)} ({_e(report.source)})</p>',
        '<h2 id="summary">Summary</h2><ul class="summary">'
        + "".join(f"<li>{_e(s)}</li>" for s in summary(report))
        + "</ul>",
        '<nav><h2 id="contents">Contents</h2><ol>' + "".join(toc) + "</ol></nav>",
        f'<h2 id="headline">Headline</h2><div class="cards">{"".join(cards)}</div>',
        '<div id="charts"></div>',
    ]
    for title, svg in charts(report):
        parts.append(f"<h2>{_e(title)}</h2>{svg}")
    parted = False
    for s in text_sections(report):
        if s.audience != MANAGER and not parted:
            parts.append(
                f'<h2 class="part" id="analysts">{_e(ANALYST_PART)}</h2>'
                '<p class="muted">The tables below are the detail behind the sections above.</p>'
            )
            parted = True
        parts.append(f'<h2 id="{_e(anchor(s))}">{_e(s.title)}</h2>{_html_table(s)}')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
