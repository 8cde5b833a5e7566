"""Renderers for the weekly report: rich (terminal), Markdown, self-contained HTML, CSV and JSON."""

from __future__ import annotations

import csv
import datetime as dt
import html
import io
import json
import sys
from pathlib import Path
from typing import Any

from shadowgate.report.runner import Report
from shadowgate.report.runner import Section

HEADLINE_LABELS = {
    "active_users": "Active users",
    "requests": "Requests",
    "tokens": "Tokens",
    "cost_usd": "Estimated cost",
    "apps": "Distinct AI apps",
    "unapproved_share": "Share unapproved",
}
SPARKS = "▁▂▃▄▅▆▇█"
HIDDEN_IN_TABLES = {("cost", "daily_by_app")}  # drawn as a chart; in JSON and CSV as data
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1")


# --- formatting ----------------------------------------------------------------------------------------


def fmt(column: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if column == "cost_usd" or column.startswith("cost"):
        return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4f}"
    if column == "unapproved_share":
        return f"{100 * value:.1f}%"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def change_text(key: str, metric: dict[str, Any]) -> str:
    change, pct = metric["change"], metric["change_pct"]
    if key == "unapproved_share":
        return f"{100 * change:+.1f} pt"
    sign = "+" if change >= 0 else "-"
    amount = fmt(key, abs(change))
    return f"{sign}{amount}" + (f" ({pct:+.1f}%)" if pct is not None else " (new)" if change else "")


def sparkline(values: list[float | int | None]) -> str:
    nums = [v or 0 for v in values]
    top = max(nums, default=0)
    if top <= 0:
        return SPARKS[0] * len(nums)
    return "".join(SPARKS[min(len(SPARKS) - 1, int(v / top * (len(SPARKS) - 1) + 0.5))] for v in nums)


def title_line(report: Report) -> str:
    return f"Shadow-AI report {report.period.label} (vs {report.previous.label})"


MAX_TEXT_ROWS = 100  # per table in rich, Markdown and HTML; JSON and CSV have every row


def text_sections(report: Report) -> list[Section]:
    """The tables for people: long ones cut at MAX_TEXT_ROWS (the title says how many there are)."""
    shown = []
    for s in report.sections:
        if s.path in HIDDEN_IN_TABLES:
            continue
        if len(s.rows) > MAX_TEXT_ROWS:
            title = f"{s.title} (first {MAX_TEXT_ROWS} of {len(s.rows):,}; all in --format json or csv)"
            s = Section(s.path, title, s.columns, s.rows[:MAX_TEXT_ROWS])
        shown.append(s)
    return shown


# --- Markdown ------------------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(report: Report) -> str:
    out = [f"# {title_line(report)}", "", f"Data: `{report.data}` ({report.source})", "", "## Headline", "",
           "| metric | this period | previous | change |", "|---|---:|---:|---:|"]
    for key, metric in report.headline.items():
        out.append(f"| {HEADLINE_LABELS[key]} | {fmt(key, metric['value'])} | {fmt(key, metric['previous'])} | "
                   f"{change_text(key, metric)} |")
    for s in text_sections(report):
        out += ["", f"## {s.title}", ""]
        if not s.rows:
            out.append("_none_")
            continue
        out.append("| " + " | ".join(s.columns) + " |")
        out.append("|" + "|".join("---" for _ in s.columns) + "|")
        for row in s.rows:
            out.append("| " + " | ".join(_md_cell(fmt(c, v)) for c, v in zip(s.columns, row)) + " |")
    return "\n".join(out) + "\n"


# --- rich ----------------------------------------------------------------------------------------------


def print_rich(report: Report, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, 160)
    console.rule(f"[bold]{title_line(report)}")
    daily = report.section("cost", "daily")
    head = Table(title="Headline", title_justify="left")
    for name in ("metric", "this period", "previous", "change", "daily"):
        head.add_column(name, justify="left" if name in ("metric", "daily") else "right")
    daily_keys = {"requests": "requests", "active_users": "users", "tokens": "tokens", "cost_usd": "cost_usd"}
    for key, metric in report.headline.items():
        change = metric["change"]
        colour = "green" if change < 0 else "red" if change > 0 else "white"
        if key in ("active_users", "apps"):
            colour = "cyan"
        series = ""
        if key in daily_keys:
            i = daily.columns.index(daily_keys[key])
            series = sparkline([r[i] for r in daily.rows])
        head.add_row(HEADLINE_LABELS[key], fmt(key, metric["value"]), fmt(key, metric["previous"]),
                     f"[{colour}]{change_text(key, metric)}[/]", f"[magenta]{series}[/]")
    console.print(head)
    for s in text_sections(report):
        table = Table(title=s.title, title_justify="left", header_style="bold cyan")
        for c in s.columns:
            if c in ("notes", "account_hints", "key_fingerprint"):  # long text: one line, cut
                table.add_column(c, max_width=40 if c == "notes" else 24, no_wrap=True, overflow="ellipsis")
            else:
                table.add_column(c, justify="right" if _numeric(s, c) else "left", overflow="fold", min_width=min(len(c), 10))
        status_i = s.columns.index("status") if "status" in s.columns else None
        for row in s.rows:
            cells = [fmt(c, v) for c, v in zip(s.columns, row)]
            if status_i is not None:
                colour = {"sanctioned": "green", "unapproved": "red"}.get(row[status_i], "yellow")
                cells[status_i] = f"[{colour}]{cells[status_i]}[/]"
            table.add_row(*cells)
        if not s.rows:
            table.add_row(*(["-"] * len(s.columns)))
        console.print(table)


def _numeric(s: Section, column: str) -> bool:
    i = s.columns.index(column)
    return any(isinstance(r[i], (int, float)) and not isinstance(r[i], bool) for r in s.rows)


# --- HTML ----------------------------------------------------------------------------------------------

CSS = """
body{font:14px/1.4 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;color:#222;margin:24px;max-width:1100px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0;font-size:12.5px}th,td{border:1px solid #ddd;padding:3px 7px}
th{background:#f3f5f8;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:10px}.card{border:1px solid #ddd;border-radius:6px;padding:8px 12px;min-width:140px}
.card b{display:block;font-size:20px}.up{color:#b22}.down{color:#282}.muted{color:#777}
.sanctioned{color:#282}.unapproved{color:#b22;font-weight:bold}.unknown{color:#a60}
svg{display:block;margin:8px 0}@media print{body{margin:0}h2{page-break-after:avoid}table{page-break-inside:avoid}}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def svg_stacked(days: list[str], series: dict[str, list[int]], width: int = 720, height: int = 220) -> str:
    """Daily stacked bars: one bar per day, one colour per app."""
    pad_l, pad_b, legend_h = 50, 22, 18 * ((len(series) + 3) // 4)
    totals = [sum(v[i] for v in series.values()) for i in range(len(days))]
    top = max(totals, default=0) or 1
    plot_h = height - pad_b - 10
    bar_w = (width - pad_l) / max(len(days), 1)
    parts = [f'<svg width="{width}" height="{height + legend_h}" role="img" aria-label="Daily requests by app">',
             f'<text x="0" y="12" font-size="11">{top:,}</text>',
             f'<line x1="{pad_l}" y1="{10 + plot_h}" x2="{width}" y2="{10 + plot_h}" stroke="#999"/>']
    for i, day in enumerate(days):
        y = 10 + plot_h
        for j, (app, values) in enumerate(series.items()):
            h = values[i] / top * plot_h
            if h <= 0:
                continue
            y -= h
            parts.append(f'<rect x="{pad_l + i * bar_w + 2:.1f}" y="{y:.1f}" width="{bar_w - 4:.1f}" height="{h:.1f}" '
                         f'fill="{PALETTE[j % len(PALETTE)]}"><title>{_e(day)} {_e(app)}: {values[i]:,}</title></rect>')
        parts.append(f'<text x="{pad_l + (i + 0.5) * bar_w:.1f}" y="{height - 6}" font-size="10" '
                     f'text-anchor="middle">{_e(day[5:])}</text>')
    for j, app in enumerate(series):
        x, y = 10 + (j % 4) * 175, height + 14 + 18 * (j // 4)
        parts.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{PALETTE[j % len(PALETTE)]}"/>'
                     f'<text x="{x + 14}" y="{y}" font-size="11">{_e(app[:26])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def svg_bars(items: list[tuple[str, float]], label, aria: str, width: int = 720, colour: str = "#4e79a7") -> str:
    """Horizontal bars with a label and a value each."""
    row_h, pad_l = 20, 200
    top = max((v for _, v in items), default=0) or 1
    parts = [f'<svg width="{width}" height="{row_h * len(items) + 6}" role="img" aria-label="{_e(aria)}">']
    for i, (name, value) in enumerate(items):
        w = max(value, 0) / top * (width - pad_l - 90)
        y = i * row_h + 3
        parts.append(f'<text x="{pad_l - 6}" y="{y + 13}" font-size="11" text-anchor="end">{_e(str(name)[:32])}</text>'
                     f'<rect x="{pad_l}" y="{y}" width="{w:.1f}" height="{row_h - 5}" fill="{colour}"/>'
                     f'<text x="{pad_l + w + 4:.1f}" y="{y + 13}" font-size="11">{_e(label(value))}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _html_table(s: Section) -> str:
    if not s.rows:
        return '<p class="muted">none</p>'
    numeric = {c for c in s.columns if _numeric(s, c)}
    head = "".join(f"<th>{_e(c)}</th>" for c in s.columns)
    body = []
    for row in s.rows:
        cells = []
        for c, v in zip(s.columns, row):
            cls = ' class="n"' if c in numeric else f' class="{_e(v)}"' if c == "status" else ""
            cells.append(f"<td{cls}>{_e(fmt(c, v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


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
    cost = [(r["provider"], r["cost_usd"] or 0.0) for r in report.section("cost", "by_provider").records()]
    users = [(r["user"], r["requests"]) for r in report.section("unapproved", "users").records()]
    return [
        ("Daily requests by app", svg_stacked(days, stacked)),
        ("Cost by provider", svg_bars(cost, lambda v: fmt("cost_usd", v), "Cost by provider")),
        ("Top unapproved users (requests)", svg_bars(users, lambda v: f"{v:,}", "Top unapproved users", colour="#e15759")),
    ]


def to_html(report: Report) -> str:
    cards = []
    for key, metric in report.headline.items():
        cls = "up" if metric["change"] > 0 else "down" if metric["change"] < 0 else "muted"
        cards.append(f'<div class="card">{_e(HEADLINE_LABELS[key])}<b>{_e(fmt(key, metric["value"]))}</b>'
                     f'<span class="{cls}">{_e(change_text(key, metric))}</span></div>')
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title_line(report))}</title><style>{CSS}</style></head><body>",
        f"<h1>{_e(title_line(report))}</h1>",
        f'<p class="muted">Data: {_e(report.data)} ({_e(report.source)})</p>',
        f'<h2>Headline</h2><div class="cards">{"".join(cards)}</div>',
    ]
    for title, svg in charts(report):
        parts.append(f"<h2>{_e(title)}</h2>{svg}")
    for s in text_sections(report):
        parts.append(f"<h2>{_e(s.title)}</h2>{_html_table(s)}")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# --- CSV and JSON --------------------------------------------------------------------------------------


def _csv_text(columns: list[str], records: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in records:
        w.writerow([";".join(map(str, v)) if isinstance(v, list) else "" if v is None else v for v in r.values()])
    return buf.getvalue()


def csv_files(report: Report) -> dict[str, str]:
    """One CSV per section: headline.csv, apps.csv, new.models.csv, cost.daily.csv, ..."""
    head = [{"metric": k, **m} for k, m in report.headline.items()]
    files = {"headline.csv": _csv_text(["metric", "value", "previous", "change", "change_pct"], head)}
    for s in report.sections:
        files[".".join(s.path) + ".csv"] = _csv_text(s.columns, s.records())
    return files


def to_json(report: Report) -> str:
    return json.dumps(report.to_dict(), indent=2, default=str) + "\n"


# --- output ----------------------------------------------------------------------------------------------


def write(report: Report, fmt_name: str, out: str | None) -> int:
    if fmt_name == "csv":
        if out and (out.endswith("/") or Path(out).is_dir()):
            folder = Path(out)
            folder.mkdir(parents=True, exist_ok=True)
            for name, text in csv_files(report).items():
                (folder / name).write_text(text, encoding="utf-8")
            return 0
        text = csv_files(report)["apps.csv"]  # a single file or stdout: the apps table
    elif fmt_name == "json":
        text = to_json(report)
    elif fmt_name == "html":
        text = to_html(report)
    elif fmt_name == "md":
        text = to_markdown(report)
    else:
        if out:
            from rich.console import Console

            with open(out, "w", encoding="utf-8") as f:
                print_rich(report, Console(file=f, width=160))
        else:
            print_rich(report)
        return 0
    if out:
        Path(out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
