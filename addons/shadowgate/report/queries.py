"""The weekly report's data: choose the period, open the data, run one SQL query per section.

The report reads rollup-shaped rows (the ai_requests_daily columns, addons/shadowgate/storage/schema.py): the
detail, one row per request, and for days that retention has reduced to their daily totals,
those. So a row may stand for many requests: sections sum `requests`.
Every query reads the temporary table `cur` (the period's rollup rows), except the two history
queries (first seen) and the previous period's headline. Readable as plain SQL: paste the
constants below into the duckdb CLI after creating `cur` with CURRENT_SQL (replace the ? with
dates).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import duckdb

from shadowgate.storage.schema import AI_REQUESTS_DAILY
from shadowgate.storage.schema import MCP_CALLS
from shadowgate.storage.store import SCHEMA_DAY
from shadowgate.storage.store import segments_dir_for

SANCTIONED, UNAPPROVED, UNKNOWN_STATUS = "sanctioned", "unapproved", "unknown"

# An "app" is a catalog provider; an unlisted AI endpoint is an app of its own, named by its site.
APP_SQL = "CASE WHEN provider = 'unknown' THEN 'unknown:' || coalesce(site, host, '?') ELSE provider END"
USER_SQL = AI_REQUESTS_DAILY.expressions["user_name"]  # the person, else the client IP


@dataclass(frozen=True, slots=True)
class Period:
    start: dt.date  # inclusive
    end: dt.date  # exclusive
    label: str

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def previous(self) -> Period:
        start = self.start - dt.timedelta(days=self.days)
        return Period(start, self.start, f"{start.isoformat()} .. {(self.start - dt.timedelta(days=1)).isoformat()}")


def week_period(week: str) -> Period:
    """'2026-W47' -> Monday 2026-11-16 up to (excluding) Monday 2026-11-23."""
    try:
        year, _, num = week.upper().partition("-W")
        start = dt.date.fromisocalendar(int(year), int(num), 1)
    except ValueError as e:
        raise ValueError(f"--week wants an ISO week like 2026-W47, not {week!r}") from e
    return Period(start, start + dt.timedelta(days=7), f"{int(year)}-W{int(num):02d}")


def last_complete_week(today: dt.date) -> Period:
    year, week, _ = (today - dt.timedelta(days=7)).isocalendar()
    return week_period(f"{year}-W{week:02d}")


def date_period(since: dt.date | None, until: dt.date | None, today: dt.date) -> Period:
    """--since/--until are both inclusive days; --until defaults to today, --since to 6 days earlier."""
    until = until or today
    since = since or until - dt.timedelta(days=6)
    if since > until:
        raise ValueError(f"--since {since} is after --until {until}")
    return Period(since, until + dt.timedelta(days=1), f"{since.isoformat()} .. {until.isoformat()}")


@dataclass(slots=True)
class Section:
    path: tuple[str, ...]  # where it sits in the JSON document, e.g. ("cost", "by_provider")
    title: str
    columns: list[str]
    rows: list[tuple]

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
    timings_ms: dict[str, float] = field(default_factory=dict)

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


# --- opening the data ----------------------------------------------------------------------------


def open_data(db: Path) -> tuple[duckdb.DuckDBPyConnection, str]:
    """An in-memory connection with views src_requests, src_daily, src_events and src_mcp over the data.

    Through the database file's views when it can be opened; when another process holds the file
    read-write (DuckDB then refuses even readers), straight from the Parquet segments. `db` may
    also be the segments directory itself.
    """
    db = db.expanduser()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    segments = db if db.is_dir() else segments_dir_for(db)
    source = "segments"
    if db.is_file():
        try:
            con.execute(f"ATTACH '{_sql_str(db)}' AS sg (READ_ONLY)")
            tables = {r[0] for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_catalog = 'sg'").fetchall()}
            if "ai_requests" in tables:
                con.execute("CREATE VIEW src_requests AS SELECT * FROM sg.ai_requests")
                if "policy_events" in tables:
                    con.execute("CREATE VIEW src_events AS SELECT * FROM sg.policy_events")
                if "mcp_calls" in tables:
                    con.execute("CREATE VIEW src_mcp_raw AS SELECT * FROM sg.mcp_calls")
                source = "database"
        except duckdb.Error:
            pass  # locked by another process: read the segments
    if source == "segments":
        if not (segments / "ai_requests").is_dir():
            con.close()
            raise FileNotFoundError(f"no shadowgate data at {db} (start the proxy first, or pass --db)")
        for view, table in (("src_requests", "ai_requests"), ("src_events", "policy_events"), ("src_mcp_raw", "mcp_calls")):
            if (segments / table).is_dir():
                glob = _sql_str(segments / table / "*" / "*.parquet")
                con.execute(
                    f"CREATE VIEW {view} AS SELECT * FROM read_parquet('{glob}', hive_partitioning = true, "
                    "hive_types = {'day': DATE}, union_by_name = true)"
                )
    _daily_views(con, segments)
    if not con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = 'src_events'").fetchone()[0]:
        con.execute(
            "CREATE VIEW src_events AS SELECT NULL::TIMESTAMP ts, NULL::DATE day, NULL event, NULL user_name, "
            "NULL user_group, NULL client_ip, NULL host, NULL provider, NULL rule_id, NULL detail WHERE false"
        )
    _mcp_view(con)
    return con, source


def _daily_views(con: duckdb.DuckDBPyConnection, segments: Path) -> None:
    """src_daily: rollup-shaped rows of every day, from the detail where it exists (one row per
    request, so nothing is grouped twice) and from the stored daily totals where retention has
    dropped it. Days are listed from the folders, so each day is read from one side only.
    """
    rollup = AI_REQUESTS_DAILY
    sql = rollup.per_row("src_requests")
    stored = segments / rollup.table.name
    if any(_day_folders(stored)):
        detail_days = list(_day_folders(segments / rollup.source))
        columns = ", ".join(f'"{c}"' for c in rollup.table.column_names)
        sql += (
            f" UNION ALL SELECT day, {columns} FROM read_parquet('{_sql_str(stored / 'day=*' / '*.parquet')}', "
            "hive_partitioning = true, hive_types = {'day': DATE}, union_by_name = true)"
        )
        if detail_days:
            sql += " WHERE day NOT IN (" + ", ".join(f"DATE '{d}'" for d in detail_days) + ")"
    con.execute(f"CREATE VIEW src_daily AS {sql}")


def _day_folders(table_dir: Path) -> Iterable[str]:
    """The days with data in a table's folder (not the schema day)."""
    for folder in sorted(table_dir.glob("day=*")) if table_dir.is_dir() else ():
        day = folder.name.removeprefix("day=")
        if day != SCHEMA_DAY and _is_date(day) and any(folder.glob("*.parquet")):
            yield day


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _mcp_view(con: duckdb.DuckDBPyConnection) -> None:
    """src_mcp with every mcp_calls column: data written before a column existed reads it as NULL,
    and data with no MCP traffic at all is an empty view."""
    have: set[str] = set()
    if con.execute("SELECT count(*) FROM duckdb_views() WHERE view_name = 'src_mcp_raw'").fetchone()[0]:
        try:
            have = {r[0] for r in con.execute("DESCRIBE src_mcp_raw").fetchall()}
        except duckdb.Error:
            have = set()  # a segments folder with no file in it yet
    columns = [
        f'"{name}"' if name in have else f'NULL::{kind} AS "{name}"' for name, kind in (*MCP_CALLS.columns, ("day", "DATE"))
    ]
    source = "src_mcp_raw" if have else "(SELECT 1) WHERE false"
    con.execute(f"CREATE VIEW src_mcp AS SELECT {', '.join(columns)} FROM {source}")


def _sql_str(path: Path) -> str:
    return path.resolve().as_posix().replace("'", "''")


# --- the SQL ---------------------------------------------------------------------------------------

# The period's daily totals with the columns the sections need, plus app and sanctioned status.
CURRENT_SQL = f"""
CREATE OR REPLACE TEMP TABLE {{table}} AS
SELECT day, user_name, user_group, host, site, provider, category, wire_format, model, requests,
       coalesce(input_tokens, 0) + coalesce(output_tokens, 0) AS tokens, input_tokens, output_tokens, cost_usd,
       unpriced, decision, rule_id, key_fingerprint, key_kind, account_hint, inspected, inspect_note,
       budget_status, dlp_findings, dlp_action, {APP_SQL} AS app,
       coalesce(ps.status, cs.status, '{UNKNOWN_STATUS}') AS status
FROM src_daily
LEFT JOIN provider_status ps USING (provider)
LEFT JOIN category_status cs USING (category)
WHERE day >= ? AND day < ?
"""

# The previous period, only what its headline needs.
PREVIOUS_SQL = f"""
SELECT user_name, requests, coalesce(input_tokens, 0) + coalesce(output_tokens, 0) AS tokens, cost_usd,
       {APP_SQL} AS app, coalesce(ps.status, cs.status, '{UNKNOWN_STATUS}') AS status
FROM src_daily
LEFT JOIN provider_status ps USING (provider)
LEFT JOIN category_status cs USING (category)
WHERE day >= ? AND day < ?
"""

# First day each app and each model was ever seen (all history up to the period's end): one
# grouping pass over plain columns, then the apps and models from that small table.
SEEN_SQL = f"""
CREATE OR REPLACE TEMP TABLE seen AS
SELECT provider, site, host, model, min(day) AS first_seen
FROM src_daily WHERE day > DATE '{SCHEMA_DAY}' AND day < ? GROUP BY ALL
"""
FIRSTS_SQL = f"""
CREATE OR REPLACE TEMP TABLE firsts AS
SELECT {APP_SQL} AS app, NULL AS model, min(first_seen) AS first_seen, NULL AS first_app, false AS by_model
FROM seen GROUP BY 1
UNION ALL
SELECT NULL, model, min(first_seen), arg_min({APP_SQL}, first_seen), true FROM seen GROUP BY model
"""

# Headline: active users, requests, tokens, cost, distinct apps, share of requests to apps not sanctioned.
HEADLINE_SQL = f"""
SELECT count(DISTINCT user_name) AS active_users, coalesce(sum(requests), 0) AS requests,
       coalesce(sum(tokens), 0) AS tokens, coalesce(sum(cost_usd), 0) AS cost_usd, count(DISTINCT app) AS apps,
       coalesce(sum(requests) FILTER (WHERE status <> '{SANCTIONED}') / nullif(sum(requests), 0), 0)
         AS unapproved_share
FROM {{table}}
"""

# AI apps: who uses each, how much, what the policy did, when it was first seen, the catalog's notes.
# Blocked/coached/redirected include what observe mode would have done; `observed` says how many.
APPS_SQL = """
SELECT c.app, any_value(coalesce(m.name, c.app)) AS name, any_value(c.category) AS category,
       any_value(c.status) AS status, count(DISTINCT c.user_name) AS users, sum(c.requests) AS requests,
       sum(c.tokens) AS tokens, sum(c.cost_usd) AS cost_usd,
       coalesce(sum(c.requests) FILTER (WHERE c.decision IN ('block', 'would_block')), 0) AS blocked,
       coalesce(sum(c.requests) FILTER (WHERE c.decision IN ('coach', 'would_coach')), 0) AS coached,
       coalesce(sum(c.requests) FILTER (WHERE c.decision IN ('redirect', 'would_redirect')), 0) AS redirected,
       coalesce(sum(c.requests) FILTER (WHERE starts_with(c.decision, 'would_')), 0) AS observed,
       any_value(f.first_seen) AS first_seen, any_value(m.notes) AS notes
FROM cur c LEFT JOIN provider_meta m USING (provider)
LEFT JOIN firsts f ON NOT f.by_model AND f.app = c.app
GROUP BY c.app ORDER BY requests DESC, c.app
"""

# New this period: apps seen for the first time.
NEW_APPS_SQL = """
SELECT app, name, category, status, users, requests, first_seen FROM apps
WHERE first_seen >= ? ORDER BY first_seen, requests DESC, app
"""

# Unknown AI endpoints (provider 'unknown'): self-hosted or unlisted API-compatible hosts.
UNKNOWN_ENDPOINTS_SQL = """
SELECT c.site, c.host, string_agg(DISTINCT c.wire_format, ',' ORDER BY c.wire_format) AS wire_formats,
       count(DISTINCT c.user_name) AS users, sum(c.requests) AS requests, any_value(f.first_seen) AS first_seen,
       any_value(f.first_seen) >= ? AS new
FROM cur c LEFT JOIN firsts f ON NOT f.by_model AND f.app = c.app
WHERE c.provider = 'unknown'
GROUP BY c.site, c.host ORDER BY requests DESC, c.host
"""

# Models seen for the first time this period, with the app they first appeared on.
NEW_MODELS_SQL = """
SELECT f.model, f.first_app AS app, f.first_seen, count(DISTINCT c.user_name) AS users, sum(c.requests) AS requests
FROM firsts f JOIN cur c ON c.model = f.model
WHERE f.by_model AND f.model IS NOT NULL AND f.first_seen >= ?
GROUP BY ALL ORDER BY f.first_seen, requests DESC, f.model
"""

# Unapproved usage (apps not sanctioned by the policy) by person, with their three main apps.
UNAPPROVED_PAIRS_SQL = """
CREATE OR REPLACE TEMP TABLE unapproved AS
SELECT user_name, user_group, app, sum(requests) AS n, sum(tokens) AS t, sum(cost_usd) AS c
FROM cur WHERE status <> 'sanctioned' GROUP BY ALL
"""
UNAPPROVED_BY_SQL = """
WITH top AS (SELECT {key} AS k, {key} AS {name}, {extra} count(DISTINCT app) AS apps, sum(n) AS requests,
                    sum(t) AS tokens, sum(c) AS cost_usd
             FROM unapproved GROUP BY {key} ORDER BY requests DESC, k LIMIT ?),
     main AS (SELECT k, list(app ORDER BY n DESC, app)[1:3] AS main_apps
              FROM (SELECT {key} AS k, app, sum(n) AS n FROM unapproved
                    WHERE {key} IN (SELECT k FROM top) GROUP BY ALL) GROUP BY k)
SELECT top.* EXCLUDE (k), main.main_apps FROM top JOIN main USING (k) ORDER BY requests DESC, k
"""

# Cost and tokens by one dimension (provider, model, group or user).
COST_BY_SQL = """
SELECT {key}, sum(requests) AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(tokens) AS tokens, sum(cost_usd) AS cost_usd, sum(unpriced) AS unpriced
FROM cur GROUP BY {group} ORDER BY {order} {limit}
"""

# The daily trend: requests, active users, tokens, cost per day.
DAILY_SQL = """
SELECT day, sum(requests) AS requests, count(DISTINCT user_name) AS users, sum(tokens) AS tokens, sum(cost_usd) AS cost_usd
FROM cur GROUP BY day ORDER BY day
"""

# Requests per day and app (the six biggest apps; the rest as 'other'), for the stacked chart.
DAILY_APPS_SQL = """
WITH top AS (SELECT app FROM cur GROUP BY app ORDER BY sum(requests) DESC, app LIMIT 6)
SELECT day, CASE WHEN app IN (SELECT app FROM top) THEN app ELSE 'other' END AS app, sum(requests) AS requests
FROM cur GROUP BY ALL ORDER BY day, requests DESC, app
"""

# DLP findings by type: requests with the type, and the number of findings (counts only, never values).
DLP_TYPES_SQL = """
WITH f AS (SELECT user_name, requests, unnest(string_split(dlp_findings, ',')) AS item FROM cur
           WHERE dlp_findings <> '')
SELECT split_part(item, ':', 1) AS type, sum(requests) AS requests,
       sum(requests * coalesce(TRY_CAST(split_part(item, ':', 2) AS BIGINT), 1)) AS findings,
       count(DISTINCT user_name) AS users
FROM f GROUP BY type ORDER BY findings DESC, type
"""

# DLP by app: requests with findings, findings, and what DLP did (redact, block, log, error).
DLP_APPS_SQL = """
WITH f AS (SELECT app, user_name, requests, dlp_action, dlp_findings,
                  requests * list_sum([coalesce(TRY_CAST(split_part(x, ':', 2) AS BIGINT), 1)
                                       FOR x IN string_split(dlp_findings, ',')]) AS n
           FROM cur WHERE dlp_findings <> '' OR dlp_action IS NOT NULL)
SELECT app, coalesce(sum(requests) FILTER (WHERE dlp_findings <> ''), 0) AS requests,
       coalesce(sum(n), 0) AS findings, count(DISTINCT user_name) AS users,
       coalesce(sum(requests) FILTER (WHERE dlp_action = 'redact'), 0) AS redacted,
       coalesce(sum(requests) FILTER (WHERE dlp_action = 'block'), 0) AS blocked,
       coalesce(sum(requests) FILTER (WHERE dlp_action = 'log'), 0) AS logged,
       coalesce(sum(requests) FILTER (WHERE dlp_action = 'error'), 0) AS errors
FROM f GROUP BY app ORDER BY findings DESC, app
"""

# Blind spots: AI connections the proxy did not decrypt (pinned apps, passthrough), by host and reason.
BLIND_SPOTS_SQL = """
SELECT host, provider, coalesce(inspect_note, '-') AS inspect_note, sum(requests) AS requests,
       count(DISTINCT user_name) AS users, min(day) AS first_day, max(day) AS last_day
FROM cur WHERE NOT inspected GROUP BY ALL ORDER BY requests DESC, host
"""

# Key inventory: per provider, each API key fingerprint with its users and personal-vs-corporate hints.
KEYS_SQL = """
SELECT provider, key_fingerprint, min(key_kind) AS key_kind,
       count(DISTINCT user_name) AS users, list(DISTINCT user_name ORDER BY user_name)[1:5] AS user_names,
       string_agg(DISTINCT account_hint, ' ' ORDER BY account_hint) AS account_hints,
       CASE WHEN bool_or(account_hint LIKE '%org=%' OR account_hint LIKE '%project=%') THEN 'corporate (org/project id)'
            WHEN bool_or(key_kind IN ('openai-service-account', 'openai-admin', 'anthropic-admin')) THEN 'corporate (key type)'
            WHEN count(DISTINCT user_name) > 1 THEN 'shared key'
            ELSE 'personal?' END AS hint,
       sum(requests) AS requests, max(day) AS last_day
FROM cur WHERE key_fingerprint IS NOT NULL
GROUP BY provider, key_fingerprint ORDER BY provider, users DESC, requests DESC, key_fingerprint
"""

# Budgets near or over their limit: the highest level each person reached per budget.
BUDGET_SQL = """
WITH b AS (SELECT user_name, user_group, day, requests, unnest(string_split(budget_status, ',')) AS item
           FROM cur WHERE budget_status <> '')
SELECT user_name AS user, min(user_group) AS "group", split_part(item, ':', 1) AS budget,
       split_part(item, ':', 2) AS unit,
       max(TRY_CAST(rtrim(split_part(item, ':', 3), '%') AS INTEGER)) AS max_percent,
       sum(requests) AS requests, max(day) AS last_day
FROM b GROUP BY user_name, budget, unit ORDER BY max_percent DESC, user, budget
"""

# Requests refused by a rate-limit or spending budget, per person.
RATE_LIMITED_SQL = """
SELECT user_name AS user, min(user_group) AS "group", string_agg(DISTINCT rule_id, ',' ORDER BY rule_id) AS budgets,
       sum(requests) AS requests, max(day) AS last_day
FROM cur WHERE decision = 'rate_limit' GROUP BY user_name ORDER BY requests DESC, user
"""

# Policy events that are not AI calls (users continuing past a coaching page), by event and app.
EVENTS_SQL = """
SELECT event, coalesce(provider, '-') AS provider, count(*) AS events, count(DISTINCT user_name) AS users
FROM src_events WHERE day >= ? AND day < ? GROUP BY ALL ORDER BY events DESC, event, provider
"""

# MCP: the period's tool-server calls (mcp_calls), with the person as the AI sections name them.
MCP_CURRENT_SQL = f"""
CREATE OR REPLACE TEMP TABLE mcp AS
SELECT day, {USER_SQL} AS user_name, coalesce(user_group, '-') AS user_group, host, server_name, session_id, method,
       tool_name, is_error, latency_ms, decision, rule_id, injection_flags, dlp_findings, dlp_action, transport
FROM src_mcp WHERE day >= ? AND day < ?
"""

# MCP servers: who calls each, how often, in how many sessions, and what the policy refused.
MCP_SERVERS_SQL = """
SELECT host, string_agg(DISTINCT server_name, ', ' ORDER BY server_name) AS server_name, count(*) AS calls,
       count(*) FILTER (WHERE method = 'tools/call') AS tool_calls, count(DISTINCT user_name) AS users,
       count(DISTINCT session_id) AS sessions, count(*) FILTER (WHERE decision = 'block') AS blocked,
       count(*) FILTER (WHERE is_error) AS errors,
       string_agg(DISTINCT transport, ', ' ORDER BY transport) AS transports
FROM mcp GROUP BY host ORDER BY calls DESC, host
"""

# The most called tools (tools/call), per server.
MCP_TOOLS_SQL = """
SELECT host, tool_name AS tool, count(*) AS calls, count(DISTINCT user_name) AS users,
       count(*) FILTER (WHERE decision = 'block') AS blocked, count(*) FILTER (WHERE is_error) AS errors,
       round(median(latency_ms), 1) AS median_ms
FROM mcp WHERE method = 'tools/call' GROUP BY host, tool_name ORDER BY calls DESC, host, tool LIMIT ?
"""

# The people using MCP servers.
MCP_USERS_SQL = """
SELECT user_name AS "user", min(user_group) AS "group", count(*) AS calls,
       count(*) FILTER (WHERE method = 'tools/call') AS tool_calls, count(DISTINCT host) AS servers,
       count(DISTINCT tool_name) AS tools, count(*) FILTER (WHERE decision = 'block') AS blocked
FROM mcp GROUP BY user_name ORDER BY calls DESC, "user" LIMIT ?
"""

# What the policy refused, filtered or would have (observe mode), by rule.
MCP_DENIALS_SQL = """
SELECT rule_id, decision, count(*) AS calls, count(DISTINCT user_name) AS users,
       coalesce(list(DISTINCT tool_name ORDER BY tool_name) FILTER (WHERE tool_name IS NOT NULL), []::VARCHAR[])[1:5] AS tools
FROM mcp WHERE decision <> 'allow' GROUP BY rule_id, decision ORDER BY calls DESC, rule_id, decision
"""

# Tool results that looked like prompt injections, by pattern.
MCP_INJECTION_SQL = """
WITH f AS (SELECT host, user_name, decision, unnest(string_split(injection_flags, ',')) AS flag
           FROM mcp WHERE injection_flags <> '')
SELECT flag, count(*) AS calls, count(DISTINCT host) AS servers, count(DISTINCT user_name) AS users,
       count(*) FILTER (WHERE decision = 'block') AS blocked
FROM f GROUP BY flag ORDER BY calls DESC, flag
"""

# DLP in tool arguments and results: calls with each type and the number found (never values).
MCP_DLP_SQL = """
WITH f AS (SELECT user_name, dlp_action, unnest(string_split(dlp_findings, ',')) AS item FROM mcp WHERE dlp_findings <> '')
SELECT split_part(item, ':', 1) AS type, count(*) AS calls,
       sum(coalesce(TRY_CAST(split_part(item, ':', 2) AS BIGINT), 1)) AS findings, count(DISTINCT user_name) AS users,
       count(*) FILTER (WHERE dlp_action = 'redact') AS redacted, count(*) FILTER (WHERE dlp_action = 'block') AS blocked,
       count(*) FILTER (WHERE dlp_action = 'log') AS logged
FROM f GROUP BY type ORDER BY findings DESC, type
"""

HEADLINE_KEYS = ("active_users", "requests", "tokens", "cost_usd", "apps", "unapproved_share")


# --- status from the policy ------------------------------------------------------------------------


def statuses(policy: Any | None) -> tuple[dict[str, str], dict[str, str]]:
    """Sanctioned status per provider id and per category, from the policy's rules.

    A provider or category named in an allow rule is sanctioned; named in a block, coach or
    redirect rule, unapproved; the first rule naming it decides, and a provider's own status
    beats its category's. Everything else has unknown status (and counts as not sanctioned).
    """
    by_provider: dict[str, str] = {}
    by_category: dict[str, str] = {}
    for rule in getattr(policy, "rules", ()) or ():
        action = rule.action.removeprefix("would_")
        status = SANCTIONED if action == "allow" else UNAPPROVED if action in ("block", "coach", "redirect") else None
        if status is None:
            continue
        for name in rule.match.providers or ():
            by_provider.setdefault(name, status)
        for name in rule.match.categories or ():
            by_category.setdefault(name, status)
    return by_provider, by_category


# --- building the report ---------------------------------------------------------------------------


def build_report(
    con: duckdb.DuckDBPyConnection,
    source: str,
    data: str,
    period: Period,
    *,
    provider_status: dict[str, str],
    category_status: dict[str, str],
    providers: Iterable[Any] = (),
    top: int = 10,
) -> Report:
    previous = period.previous()
    report = Report(period, previous, source, data)
    timings = report.timings_ms

    def timed(name: str, sql: str, params: list | None = None, path: tuple[str, ...] | None = None,
              title: str = "") -> Section | None:
        t0 = time.perf_counter()
        cur = con.execute(sql, params or [])
        section = None
        if cur.description is not None:
            section = Section(path or (name,), title, [d[0] for d in cur.description], cur.fetchall())
            if path is not None:
                report.sections.append(section)
        timings[name] = timings.get(name, 0.0) + (time.perf_counter() - t0) * 1000
        return section

    con.execute("CREATE OR REPLACE TEMP TABLE provider_status (provider VARCHAR, status VARCHAR)")
    con.execute("CREATE OR REPLACE TEMP TABLE category_status (category VARCHAR, status VARCHAR)")
    con.execute("CREATE OR REPLACE TEMP TABLE provider_meta (provider VARCHAR, name VARCHAR, notes VARCHAR)")
    if provider_status:
        con.executemany("INSERT INTO provider_status VALUES (?, ?)", list(provider_status.items()))
    if category_status:
        con.executemany("INSERT INTO category_status VALUES (?, ?)", list(category_status.items()))
    meta = [(p.id, p.name, p.notes or None) for p in providers]
    if meta:
        con.executemany("INSERT INTO provider_meta VALUES (?, ?, ?)", meta)

    timed("scan_period", CURRENT_SQL.format(table="cur"), [period.start, period.end])
    timed("first_seen", SEEN_SQL, [period.end])
    timed("first_seen", FIRSTS_SQL)

    now = timed("headline", HEADLINE_SQL.format(table="cur"))
    before = timed("scan_previous", HEADLINE_SQL.format(table=f"({PREVIOUS_SQL})"), [previous.start, previous.end])
    for key, value, old in zip(now.columns, now.rows[0], before.rows[0]):
        value, old = _plain(value), _plain(old)
        change = _plain(value - old)
        report.headline[key] = {
            "value": value,
            "previous": old,
            "change": change,
            "change_pct": round(100.0 * change / old, 1) if old else None,
        }

    timed("apps", "CREATE OR REPLACE TEMP TABLE apps AS " + APPS_SQL)
    timed("apps", "SELECT * FROM apps", path=("apps",), title="AI apps")
    timed("new", NEW_APPS_SQL, [period.start], ("new", "apps"), "New apps")
    timed("new", UNKNOWN_ENDPOINTS_SQL, [period.start], ("new", "unknown_endpoints"), "Unknown AI endpoints")
    timed("new", NEW_MODELS_SQL, [period.start], ("new", "models"), "Models seen for the first time")
    timed("unapproved", UNAPPROVED_PAIRS_SQL)
    timed("unapproved", UNAPPROVED_BY_SQL.format(key="user_name", name='"user"', extra='min(user_group) AS "group",'),
          [top], ("unapproved", "users"), f"Unapproved usage: top {top} users")
    timed("unapproved", UNAPPROVED_BY_SQL.format(key="user_group", name='"group"', extra="count(DISTINCT user_name) AS users,"),
          [top], ("unapproved", "groups"), f"Unapproved usage: top {top} groups")
    limit = f"LIMIT {int(top)}"
    by_cost = "cost_usd DESC NULLS LAST, tokens DESC, requests DESC"
    user_cols = 'user_name AS "user", min(user_group) AS "group"'
    for key, cols, group, order, lim, title in (
        ("by_provider", "provider", "provider", f"{by_cost}, provider", "", "Cost and tokens by provider"),
        ("by_model", "provider, model", "provider, model", f"{by_cost}, provider, model", limit, f"Top {top} models by cost"),
        ("by_group", 'user_group AS "group"', "user_group", f"{by_cost}, user_group", "", "Cost and tokens by group"),
        ("by_user", user_cols, "user_name", "tokens DESC, requests DESC, user_name", limit, f"Top {top} users by tokens"),
        ("top_spenders", user_cols, "user_name", f"{by_cost}, user_name", limit, f"Top {top} spenders"),
    ):
        sql = COST_BY_SQL.format(key=cols, group=group, order=order, limit=lim)
        timed("cost", sql, path=("cost", key), title=title)
    timed("daily", DAILY_SQL, path=("cost", "daily"), title="Daily trend")
    timed("daily", DAILY_APPS_SQL, path=("cost", "daily_by_app"), title="Daily requests by app")
    timed("dlp", DLP_TYPES_SQL, path=("dlp", "by_type"), title="DLP findings by type")
    timed("dlp", DLP_APPS_SQL, path=("dlp", "by_app"), title="DLP by app")
    timed("blind_spots", BLIND_SPOTS_SQL, path=("blind_spots",), title="Blind spots: AI traffic not inspected")
    timed("keys", KEYS_SQL, path=("keys",), title="Key inventory")
    timed("budget", BUDGET_SQL, path=("budget", "near_limit"), title="Budgets near or over their limit")
    timed("budget", RATE_LIMITED_SQL, path=("budget", "rate_limited"), title="Rate-limited and budget-refused requests")
    timed("policy_events", EVENTS_SQL, [period.start, period.end], ("policy_events",), "Policy events")
    timed("mcp", MCP_CURRENT_SQL, [period.start, period.end])
    timed("mcp", MCP_SERVERS_SQL, path=("mcp", "servers"), title="MCP servers")
    timed("mcp", MCP_TOOLS_SQL, [top], ("mcp", "tools"), f"MCP: top {top} tools")
    timed("mcp", MCP_USERS_SQL, [top], ("mcp", "users"), f"MCP: top {top} users")
    timed("mcp", MCP_DENIALS_SQL, path=("mcp", "denials"), title="MCP: refused and filtered calls by rule")
    timed("mcp", MCP_INJECTION_SQL, path=("mcp", "injection"), title="MCP: prompt-injection flags in tool results")
    timed("mcp", MCP_DLP_SQL, path=("mcp", "dlp"), title="MCP: DLP findings in tool arguments and results")
    timings["total"] = sum(timings.values())
    return report
