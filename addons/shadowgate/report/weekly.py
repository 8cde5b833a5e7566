"""`shadowgate report`: the weekly shadow-AI report (issue 5).

    shadowgate report                              # last complete ISO week, rich on a terminal, md otherwise
    shadowgate report --week 2026-W47 --format html --out week47.html
    shadowgate report --since 2026-11-01 --until 2026-11-30 --format json
    shadowgate report --format csv --out out/      # one CSV per section in a directory
    shadowgate report --mail-to it@example.com --smtp mail.example.com:587 --smtp-starttls   # delivered

The SQL is in reports/*.sql (one file per section; reports/README.md shows how to run one in the
duckdb CLI), run by addons/shadowgate/report/runner.py; the renderers are in render.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

import duckdb

from shadowgate.cli.argtypes import positive_int
from shadowgate.cli.catalog_options import add_catalog_arguments
from shadowgate.cli.catalog_options import catalog_from_arguments
from shadowgate.report import deliver
from shadowgate.report import period as periods
from shadowgate.report import render
from shadowgate.report import runner
from shadowgate.report.data import open_data

FORMATS = ("rich", "md", "html", "csv", "json")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db", default="~/.shadowgate/shadowgate.duckdb", help="the database file (or its .segments directory)"
    )
    parser.add_argument("--week", help="ISO week, e.g. 2026-W47 (default: the last complete week)")
    parser.add_argument("--since", type=dt.date.fromisoformat, help="first day (inclusive), YYYY-MM-DD")
    parser.add_argument("--until", type=dt.date.fromisoformat, help="last day (inclusive), YYYY-MM-DD")
    parser.add_argument("--format", choices=FORMATS, help="default: rich on a terminal, md otherwise")
    parser.add_argument("--out", help="write here instead of stdout (csv: a directory gets one CSV per section)")
    parser.add_argument("--policy", help="the policy file, for which apps are sanctioned")
    add_catalog_arguments(parser, "the provider catalog, for names and notes")
    parser.add_argument("--top", type=positive_int, default=10, help="rows in the top-N tables (default 10)")
    deliver.add_arguments(parser)


def choose_period(args: argparse.Namespace, today: dt.date | None = None) -> periods.Period:
    today = today or dt.datetime.now(dt.UTC).date()
    if args.week and (args.since or args.until):
        raise ValueError("use either --week or --since/--until")
    if args.week:
        return periods.week_period(args.week)
    if args.since or args.until:
        return periods.date_period(args.since, args.until, today)
    return periods.last_complete_week(today)


def make_report(args: argparse.Namespace, progress=None) -> runner.Report:
    from shadowgate.config.policy import load_policy

    period = choose_period(args)
    catalog = catalog_from_arguments(args)
    policy = load_policy(args.policy) if args.policy else None
    by_provider, by_category = runner.statuses(policy)
    db = Path(args.db).expanduser()
    con, source = open_data(db)
    try:
        report = runner.build_report(
            con,
            source,
            str(db),
            period,
            provider_status=by_provider,
            category_status=by_category,
            rule_status=runner.rule_statuses(policy),
            providers=catalog.providers.values(),
            top=args.top,
        )
        if report.headline["requests"]["value"] == 0:
            print(f"shadowgate: {where_the_requests_are(con, period)}", file=sys.stderr)
        return report
    finally:
        con.close()


def where_the_requests_are(con: duckdb.DuckDBPyConnection, period: periods.Period) -> str:
    """For a period with no requests: which days of the database have some, so that a first report
    (by default the last complete week) does not read as if nothing was recorded."""
    row = con.execute("SELECT sum(requests), min(day), max(day) FROM ai_requests_daily").fetchone()
    total, first, last = row if row is not None else (None, None, None)
    if not total:
        return f"no AI requests in {period.label}, nor in the database"
    year, week, _ = last.isocalendar()
    return (
        f"no AI requests in {period.label}; the database has {total:,}, from {first} to {last}: "
        f"try --week {year}-W{week:02d} or --since {first}"
    )


def run_report(args: argparse.Namespace) -> int:
    fmt = args.format or ("rich" if sys.stdout.isatty() and not args.out else "md")
    try:
        if fmt == "rich" and sys.stderr.isatty():
            from rich.console import Console

            with Console(stderr=True).status("shadowgate: querying…"):
                report = make_report(args)
        else:
            report = make_report(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"shadowgate: {e}", file=sys.stderr)
        return 2 if isinstance(e, ValueError) else 1
    except duckdb.Error as e:
        print(f"shadowgate: cannot read {args.db}: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    except Exception as e:  # a bad policy or catalog file: ConfigError names file and line
        if type(e).__name__ != "ConfigError":
            raise
        print(f"shadowgate: {e}", file=sys.stderr)
        return 2
    if deliver.wanted(args):  # sent by mail or to a webhook; --format/--out still write a copy if given
        status = deliver.deliver(report, args)
        return status if not (args.format or args.out) else status or render.write(report, fmt, args.out)
    return render.write(report, fmt, args.out)
