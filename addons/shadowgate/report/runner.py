"""Run the report's SQL files (reports/*.sql) and build the report's sections from their headers.

Each file starts with an aiosql-style header, then its SQL:

    -- name: apps                 (the file name without its number)
    -- title: AI apps             (the section's title; {top} is the --top value)
    -- path: apps                 (where it sits in the JSON document, dotted: cost.by_provider)
    -- audience: manager          (optional: rendered in the manager's part, before the analyst's)
    -- One line saying what it is.

Files run in file-name order on one connection, so a file may use the temp tables that an earlier
one created. A file with a `path` is a section: its last statement's rows are the section. One
without is set-up (the period, first-seen dates). Every value comes from a DuckDB variable
(getvariable('period_start'), ...), set here exactly as an analyst sets them in the duckdb CLI,
so adding a section is adding one .sql file.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from dataclasses import fields
from pathlib import Path
from typing import Any

import duckdb

from shadowgate.report.period import Period
from shadowgate.resources import REPORTS_DIR

SANCTIONED, UNAPPROVED, RESTRICTED = "sanctioned", "unapproved", "restricted"
MANAGER, ANALYST = "manager", "analyst"  # who reads a section; the manager's come first in the text formats
HEADLINE = ("headline",)  # the one section rendered as this period against the previous one
_HEADER = re.compile(r"--\s*(name|title|path|audience):\s*(.*\S)\s*$")


@dataclass(frozen=True, slots=True)
class Query:
    """One reports/*.sql file."""

    name: str
    title: str
    path: tuple[str, ...] | None  # None: set-up, no section
    description: str
    sql: str
    file: Path
    audience: str = ANALYST


def parse_query(file: Path) -> Query:
    """The header and SQL of one file; a file without `-- name:` or a one-line description is an error."""
    text = file.read_text(encoding="utf-8")
    header: dict[str, str] = {}
    description = ""
    for line in text.splitlines():
        if not line.startswith("--"):
            break
        if match := _HEADER.fullmatch(line):
            header[match[1]] = match[2]
        else:
            description = line.removeprefix("--").strip()
            break
    if "name" not in header or not description:
        raise ValueError(f"{file}: wants a '-- name:' header and a one-line description under it")
    path = tuple(header["path"].split(".")) if "path" in header else None
    audience = header.get("audience", ANALYST)
    if audience not in (MANAGER, ANALYST):
        raise ValueError(f"{file}: '-- audience:' is {MANAGER} or {ANALYST}, not {audience!r}")
    return Query(header["name"], header.get("title", ""), path, description, text, file, audience)


def load_queries(folder: Path = REPORTS_DIR) -> list[Query]:
    """The report's queries in the order they run: by file name."""
    return [parse_query(f) for f in sorted(folder.glob("[0-9]*.sql"))]


@dataclass(slots=True)
class Section:
    path: tuple[str, ...]  # where it sits in the JSON document, e.g. ("cost", "by_provider")
    title: str
    columns: list[str]
    rows: list[tuple]
    audience: str = ANALYST

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, (_plain(v) for v in row))) for row in self.rows]


@dataclass(slots=True)
class Report:
    period: Period
    previous: Period
    source: str  # "database" (the views in the file) or "segments" (read_parquet: the file was locked)
    data: str
    headline: dict[str, dict[str, Any]] = field(default_factory=dict)
    sections: list[Section] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)  # per query name, and the total

    def section(self, *path: str) -> Section:
        return next(s for s in self.sections if s.path == path)

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "period": {
                "label": self.period.label,
                "since": self.period.start.isoformat(),
                "until": (self.period.end - dt.timedelta(days=1)).isoformat(),
                "previous_since": self.previous.start.isoformat(),
                "previous_until": (self.previous.end - dt.timedelta(days=1)).isoformat(),
            },
            "source": self.source,
            "headline": self.headline,
        }
        for s in self.sections:
            node = doc
            for key in s.path[:-1]:
                node = node.setdefault(key, {})
            node[s.path[-1]] = s.records()
        doc["timings_ms"] = {k: round(v, 1) for k, v in self.timings_ms.items()}
        return doc


def _plain(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def statuses(policy: Any | None) -> tuple[dict[str, str], dict[str, str]]:
    """Sanctioned status per provider id and per category, from the policy's rules.

    A rule that names only apps (providers, categories) judges them whole: allow makes them
    sanctioned; block, coach or redirect, unapproved; the first such rule naming an app decides.
    A rule narrowed by anything else (a model, user, group, client, host, ...) judges only the
    calls it meets (rule_statuses), so it never makes the whole app unapproved: an app that only
    narrowed block, coach or redirect rules name is `restricted`. reports/00_period.sql combines
    these (a provider's whole-app status beats its category's) and defines what a call counts as.
    """
    by_provider: dict[str, str] = {}
    by_category: dict[str, str] = {}
    restricted: tuple[dict[str, str], dict[str, str]] = ({}, {})
    for rule in getattr(policy, "rules", ()) or ():
        status = _rule_status(rule)
        if status is None:
            continue
        if _narrowed(rule.match):
            if status == UNAPPROVED:
                restricted[0].update(dict.fromkeys(rule.match.providers or (), RESTRICTED))
                restricted[1].update(dict.fromkeys(rule.match.categories or (), RESTRICTED))
            continue
        for name in rule.match.providers or ():
            by_provider.setdefault(name, status)
        for name in rule.match.categories or ():
            by_category.setdefault(name, status)
    return {**restricted[0], **by_provider}, {**restricted[1], **by_category}


def rule_statuses(policy: Any | None) -> dict[str, str]:
    """What a call a rule met counts as, per rule id: sanctioned for an allow rule, unapproved for
    block, coach and redirect (a redirect that happened is sanctioned use all the same: 00_period.sql).
    Only rules that name an app: a catch-all (`match: all`) says nothing about which apps are
    sanctioned, and calls it meets keep their app's status."""
    return {
        rule.id: status
        for rule in getattr(policy, "rules", ()) or ()
        if (status := _rule_status(rule)) is not None and (rule.match.providers or rule.match.categories)
    }


def _rule_status(rule: Any) -> str | None:
    action = rule.action.removeprefix("would_")
    return SANCTIONED if action == "allow" else UNAPPROVED if action in ("block", "coach", "redirect") else None


def _narrowed(match: Any) -> bool:
    """Whether a match names more than apps: then it judges some of an app's calls, not the app."""
    return any(getattr(match, f.name) is not None for f in fields(match) if f.name not in ("providers", "categories"))


def set_variables(con: duckdb.DuckDBPyConnection, variables: dict[str, Any]) -> None:
    """SET VARIABLE for each: dates, numbers, and {str: str} dicts as MAP(VARCHAR, VARCHAR)."""
    for name, value in variables.items():
        if not name.isidentifier():
            raise ValueError(f"not a variable name: {name!r}")
        if isinstance(value, dict):
            con.execute(f"SET VARIABLE {name} = map(?::VARCHAR[], ?::VARCHAR[])", [list(value), list(value.values())])
        else:
            con.execute(f"SET VARIABLE {name} = ?", [value])


def build_report(
    con: duckdb.DuckDBPyConnection,
    source: str,
    data: str,
    period: Period,
    *,
    provider_status: dict[str, str],
    category_status: dict[str, str],
    rule_status: dict[str, str] | None = None,
    providers: Iterable[Any] = (),
    top: int = 10,
    queries: list[Query] | None = None,
) -> Report:
    """Set the variables, run every query in order, and collect the sections."""
    report = Report(period, period.previous(), source, data)
    providers = list(providers)
    set_variables(
        con,
        {
            "period_start": period.start,
            "period_end": period.end,
            "top": int(top),
            "provider_status": provider_status,
            "category_status": category_status,
            "rule_status": rule_status or {},
            "provider_names": {p.id: p.name for p in providers},
            "provider_notes": {p.id: p.notes for p in providers if p.notes},
            # The documented level from the catalog's facts (config/catalog_facts.py), and the
            # training setting of the service's worst plan tier, the one a shadow user is usually on.
            "provider_risk": {p.id: p.risk for p in providers},
            "provider_training": {p.id: p.facts.worst_training for p in providers},
            # Renamed, acquired, retiring or retired (config/catalog_lifecycle.py): traffic to such a
            # service is still matched and counted, and the table says what became of it.
            "provider_lifecycle": {p.id: p.lifecycle.describe() for p in providers if p.lifecycle},
        },
    )
    for query in load_queries() if queries is None else queries:
        t0 = time.perf_counter()
        cur = con.execute(query.sql)
        if query.path is not None:
            if cur.description is None:
                raise ValueError(f"{query.file}: a section's last statement must return rows")
            section = Section(
                query.path, query.title.format(top=top), [d[0] for d in cur.description], cur.fetchall(), query.audience
            )
            if query.path == HEADLINE:
                report.headline = headline(section)
            else:
                report.sections.append(section)
        report.timings_ms[query.name] = (time.perf_counter() - t0) * 1000
    report.timings_ms["total"] = sum(report.timings_ms.values())
    return report


def headline(section: Section) -> dict[str, dict[str, Any]]:
    """{metric: value, previous, change, change_pct} from the headline's rows: current, then previous.

    A value that is unknown (None: a cost with no price, a share without a policy) has no change.
    """
    rows = {r.pop("period"): r for r in section.records()}
    now, before = rows["current"], rows["previous"]
    metrics = {}
    for key, value in now.items():
        old = before[key]
        change = None if value is None or old is None else _plain(value - old)
        metrics[key] = {
            "value": value,
            "previous": old,
            "change": change,
            "change_pct": round(100.0 * change / old, 1) if old and change is not None else None,
        }
    return metrics
