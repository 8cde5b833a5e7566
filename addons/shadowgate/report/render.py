"""Renderers for the weekly report: rich (terminal), Markdown, self-contained HTML, CSV and JSON."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import sys
from pathlib import Path
from typing import Any

from shadowgate.report.runner import MANAGER
from shadowgate.report.runner import Report
from shadowgate.report.runner import Section
from shadowgate.report.summary import money
from shadowgate.report.summary import summary

HEADLINE_LABELS = {
    "active_users": "Active users",
    "requests": "Requests",
    "tokens": "Tokens",
    "cost_usd": "Estimated cost",
    "apps": "Distinct AI apps",
    "sanctioned_share": "Share sanctioned",
    "unapproved_share": "Share unapproved",
    "unknown_share": "Share unknown",
}
UNKNOWN_COST = "–"  # a cost with no price is unknown, never $0.0000
NO_SHARE = "–"  # a share of a period without requests: nothing to share, not 0 % and not unknown
SHARES = ("sanctioned_share", "unapproved_share", "unknown_share")
ANALYST_PART = "Details for analysts"
SPARKS = "▁▂▃▄▅▆▇█"
HIDDEN_IN_TABLES = {("cost", "daily_by_app")}  # drawn as a chart; in JSON and CSV as data


# --- formatting ----------------------------------------------------------------------------------------


def _is_cost(column: str) -> bool:
    return column == "cost_usd" or column.startswith("cost")


def fmt(column: str, value: Any) -> str:
    if value is None:
        return UNKNOWN_COST if _is_cost(column) else "unknown" if column in SHARES else "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if _is_cost(column):
        return money(value)
    if column in SHARES:
        return f"{100 * value:.1f}%"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def headline_text(report: Report, key: str, which: str = "value") -> str:
    """One headline figure, this period's ("value") or the previous one's; a share of a period
    without requests is NO_SHARE, where one the report cannot tell (no --policy) is 'unknown'."""
    if key in SHARES and not report.headline["requests"][which]:
        return NO_SHARE
    return fmt(key, report.headline[key][which])


def change_text(key: str, metric: dict[str, Any]) -> str:
    change, pct = metric["change"], metric["change_pct"]
    if change is None:
        return UNKNOWN_COST  # the value or the previous one is unknown
    if key in SHARES:
        return f"{100 * change:+.1f} pt"
    sign = "+" if change >= 0 else "-"
    amount = fmt(key, abs(change))
    return f"{sign}{amount}" + (f" ({pct:+.1f}%)" if pct is not None else " (new)" if change else "")


def sparkline(values: list[float | int | None]) -> str:
    """One block per value; an unknown value (a day's cost with no price) is a gap, not the lowest block."""
    top = max((v for v in values if v is not None), default=0)
    if top <= 0:
        return "".join(" " if v is None else SPARKS[0] for v in values)
    return "".join(
        " " if v is None else SPARKS[min(len(SPARKS) - 1, int(v / top * (len(SPARKS) - 1) + 0.5))] for v in values
    )


def title_line(report: Report) -> str:
    return f"Shadow-AI report {report.period.label} (vs {report.previous.label})"


MAX_TEXT_ROWS = 100  # per table in rich, Markdown and HTML; JSON and CSV have every row


def text_sections(report: Report) -> list[Section]:
    """The tables for people, the manager's before the analyst's (each part in file order): long ones cut
    at MAX_TEXT_ROWS (the title says how many there are)."""
    shown = []
    for s in sorted(report.sections, key=lambda s: s.audience != MANAGER):
        if s.path in HIDDEN_IN_TABLES:
            continue
        if len(s.rows) > MAX_TEXT_ROWS:
            title = f"{s.title} (first {MAX_TEXT_ROWS} of {len(s.rows):,}; all in --format json or csv)"
            s = Section(s.path, title, s.columns, s.rows[:MAX_TEXT_ROWS], s.audience)
        shown.append(s)
    return shown


# --- the reading order ----------------------------------------------------------------------------------


def anchor(s: Section) -> str:
    return "s-" + "-".join(s.path).replace("_", "-")


def contents(report: Report) -> list[tuple[str, str, bool]]:
    """(anchor, title, is a part heading) in reading order: summary, headline, the manager's sections,
    then the analyst's under one heading."""
    entries = [("summary", "Summary", False), ("headline", "Headline", False)]
    parted = False
    for s in text_sections(report):
        if s.audience != MANAGER and not parted:
            entries.append(("analysts", ANALYST_PART, True))
            parted = True
        entries.append((anchor(s), s.title, False))
    return entries


# --- Markdown ------------------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(report: Report) -> str:
    out = [
        f"# {title_line(report)}",
        "",
        f"Data: `{report.data}` ({report.source})",
        "",
        '<a id="summary"></a>',
        "",
        "## Summary",
        "",
    ]
    out += [f"- {line}" for line in summary(report)]
    out += ["", "## Contents", ""]
    in_part = False
    for key, title, part in contents(report):
        in_part = in_part or part
        out.append(f"{'  ' if in_part and not part else ''}- [{_md_cell(title)}](#{key})")
    out += [
        "",
        '<a id="headline"></a>',
        "",
        "## Headline",
        "",
        "| metric | this period | previous | change |",
        "|---|---:|---:|---:|",
    ]
    for key, metric in report.headline.items():
        out.append(
            f"| {HEADLINE_LABELS[key]} | {headline_text(report, key)} | {headline_text(report, key, 'previous')} | "
            f"{change_text(key, metric)} |"
        )
    parted = False
    for s in text_sections(report):
        if s.audience != MANAGER and not parted:
            out += [
                "",
                '<a id="analysts"></a>',
                "",
                f"## {ANALYST_PART}",
                "",
                "The tables below are the detail behind the sections above.",
            ]
            parted = True
        out += ["", f'<a id="{anchor(s)}"></a>', "", f"## {s.title}", ""]
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
    console.print("[bold]Summary[/]")
    for line in summary(report):
        console.print(f"  • {line}", markup=False, highlight=False)
    console.print("[bold]Contents[/]")
    for _, title, part in contents(report):
        console.print(f"  {title}" if part else f"    {title}", markup=False, highlight=False)
    daily = report.section("cost", "daily")
    head = Table(title="Headline", title_justify="left")
    for name in ("metric", "this period", "previous", "change", "daily"):
        head.add_column(name, justify="left" if name in ("metric", "daily") else "right")
    daily_keys = {"requests": "requests", "active_users": "users", "tokens": "tokens", "cost_usd": "cost_usd"}
    for key, metric in report.headline.items():
        change = metric["change"] or 0
        colour = "green" if change < 0 else "red" if change > 0 else "white"
        if key in ("active_users", "apps"):
            colour = "cyan"
        series = ""
        if key in daily_keys:
            i = daily.columns.index(daily_keys[key])
            series = sparkline([r[i] for r in daily.rows])
        head.add_row(
            HEADLINE_LABELS[key],
            headline_text(report, key),
            headline_text(report, key, "previous"),
            f"[{colour}]{change_text(key, metric)}[/]",
            f"[magenta]{series}[/]",
        )
    console.print(head)
    parted = False
    for s in text_sections(report):
        if s.audience != MANAGER and not parted:
            console.rule(f"[bold]{ANALYST_PART}")
            parted = True
        table = Table(title=s.title, title_justify="left", header_style="bold cyan")
        for c in s.columns:
            if c in ("notes", "account_hints", "key_fingerprint"):  # long text: one line, cut
                table.add_column(c, max_width=40 if c == "notes" else 24, no_wrap=True, overflow="ellipsis")
            else:
                table.add_column(
                    c, justify="right" if _numeric(s, c) else "left", overflow="fold", min_width=min(len(c), 10)
                )
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


def to_html(report: Report) -> str:
    from shadowgate.report.render_html import to_html as html_document  # imports this module's formatting

    return html_document(report)


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
