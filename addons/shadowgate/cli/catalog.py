"""`shadowgate catalog`: the proxy's own matcher and the catalog's contents, for admins.

    match HOST [PATH]     which service a host (and path) belongs to; '-' reads hosts from stdin
    list                  every service: id, category, risk level, name
    show ID               one service with its hosts, source, verified date and risk facts
    stats                 services per category, and how many carry a source and risk facts
    validate FILE         check a catalog or a company overlay (--extra) the way the proxy would
    hosts                 every host pattern the proxy must see, one a line (--format squid: for
                          Squid's dstdomain, `.x` for `*.x`, without entries another one covers)
    diff OLD NEW          services and hosts added, removed or changed between two catalogs
    candidates            AI endpoints the proxy saw that the catalog does not list, with a YAML
                          skeleton for each (--db FILE, --days N, --until DAY)

Every command takes --providers (default: the shipped providers.yaml) and --extra FILE (a
company overlay, repeatable), merged exactly as the proxy merges them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from shadowgate.cli.catalog_options import add_catalog_arguments
from shadowgate.config.catalog import Catalog
from shadowgate.config.catalog import check_host_pattern
from shadowgate.config.catalog import load_configured_catalog
from shadowgate.config.catalog import normalise_host
from shadowgate.config.yamlfile import ConfigError
from shadowgate.resources import REPORTS_DIR

# The period's rows as `cur` (the report's own set-up), then the candidates grouped per site.
PERIOD_SQL, CANDIDATES_SQL = "00_period.sql", "14_catalog_candidates.sql"
# Uncatalogued hosts whose names look like AI, from the TLS connections the proxy saw (no paths).
HOST_CANDIDATES_SQL = "15_host_candidates.sql"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="catalog_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    add_catalog_arguments(common)
    match = sub.add_parser("match", parents=[common], help="HOST<TAB>provider<TAB>category, or HOST<TAB>- when not AI")
    match.add_argument("host", help="a host or URL, or '-' to read one per line from stdin")
    match.add_argument("path", nargs="?", help="a request path, to also name the wire format")
    match.add_argument("--method", default="POST")
    sub.add_parser("list", parents=[common], help="every service: id, category, risk, name")
    show = sub.add_parser("show", parents=[common], help="one service in full")
    show.add_argument("id")
    sub.add_parser("stats", parents=[common], help="services per category; sources and facts coverage")
    validate = sub.add_parser("validate", parents=[common], help="validate a catalog (or, with --extra, an overlay)")
    validate.add_argument("file", nargs="?", help="the catalog to validate (default: --providers)")
    hosts = sub.add_parser("hosts", parents=[common], help="every host pattern, for another proxy's lists")
    hosts.add_argument(
        "--format", choices=("plain", "squid"), default="plain",
        help="plain: the patterns as the proxy matches them; squid: a dstdomain list",
    )  # fmt: skip
    diff = sub.add_parser("diff", parents=[common], help="what changed between two catalogs")
    diff.add_argument("old")
    diff.add_argument("new")
    candidates = sub.add_parser(
        "candidates", parents=[common], help="unlisted AI endpoints from the proxy's database, as YAML skeletons"
    )
    candidates.add_argument("--db", default="~/.shadowgate/shadowgate.duckdb")
    candidates.add_argument("--days", type=int, default=30, help="how many days back, the last one included")
    candidates.add_argument("--until", type=dt.date.fromisoformat, help="the last day (default: today, UTC)")
    candidates.add_argument("--format", choices=("text", "yaml"), default="text", help="a table, or only the YAML")


def run(args: argparse.Namespace) -> int:
    try:
        if args.catalog_command == "diff":
            old = load_configured_catalog(args.old, args.extra)
            new = load_configured_catalog(args.new, args.extra)
            print("\n".join(diff_lines(old, new)) or "no changes")
            return 0
        catalog = load_configured_catalog(getattr(args, "file", None) or args.providers, args.extra)
    except ConfigError as e:
        print(f"shadowgate: {e}", file=sys.stderr)
        return 2
    command = args.catalog_command
    if command == "candidates":
        return run_candidates(args, catalog)
    if command == "match":
        targets = (
            (line for line in sys.stdin if line.strip() and not line.lstrip().startswith("#"))
            if args.host == "-"
            else [args.host]
        )
        for target in targets:
            print(match_line(catalog, target, args.path if args.host != "-" else None, args.method))
    elif command == "list":
        for p in sorted(catalog.providers.values(), key=lambda p: (p.category, p.id)):
            print(f"{p.id}\t{p.category}\t{p.risk}\t{p.name}")
    elif command == "show":
        provider = catalog.providers.get(args.id)
        if provider is None:
            print(f"shadowgate: no service {args.id!r} in {catalog.source}", file=sys.stderr)
            return 1
        print("\n".join(show_lines(provider)))
    elif command == "stats":
        print("\n".join(stats_lines(catalog)))
    elif command == "hosts":
        patterns = catalog.host_patterns()
        print("\n".join(squid_domains(patterns) if args.format == "squid" else patterns))
    else:
        print(f"ok: {len(catalog.providers)} services, {len(catalog.host_patterns())} host patterns ({catalog.source})")
        if args.extra:
            base = load_configured_catalog(getattr(args, "file", None) or args.providers)
            print("what the overlays change in the catalog (an entry with a catalogued id replaces it whole):")
            print("\n".join(diff_lines(base, catalog)) or "  nothing")
    return 0


def match_line(catalog: Catalog, target: str, path: str | None = None, method: str = "POST") -> str:
    """HOST<TAB>provider<TAB>category, then <TAB>wire-format:operation when a path is known."""
    target = target.strip()
    url = urlsplit(target if "://" in target else f"//{target}")
    host = normalise_host(url.hostname or target)
    path = path or (url.path if url.path not in ("", "/") else None)
    provider = catalog.match(host, path)
    columns = [host, provider.id, provider.category] if provider else [host, "-"]
    if path:
        route = catalog.route(provider, method.upper(), path)
        if provider is None and route is not None:
            columns = [host, "unknown", "-"]
        columns.append(f"{route.wire_format}:{route.operation}" if route else "-")
    return "\t".join(columns)


def run_match(target: str, path: str | None, method: str, providers: str) -> int:
    """The original `catalog match` entry point, kept for callers that pass plain arguments."""
    return run(
        argparse.Namespace(
            catalog_command="match", host=target, path=path, method=method, providers=providers, extra=[]
        )
    )


def show_lines(p) -> list[str]:
    f = p.facts
    lines = [
        f"{p.id}: {p.name} ({p.vendor})",
        f"  category     {p.category}{'' if p.is_usage else ' (interest, not usage)'}",
        f"  hosts        {', '.join(p.hosts)}",
    ]
    if p.paths:
        lines.append(
            f"  paths        {', '.join(p.paths)}{' on ' + ', '.join(p.shared_hosts) if p.shared_hosts else ''}"
        )
    lines += [
        f"  wire formats {', '.join(p.wire_formats) or '-'}",
        f"  source       {p.source or '-'} (verified {p.verified or 'never'})",
        *(f"               {url}" for url in p.sources[1:]),
        f"  risk         {p.risk} ({f.risk_points} points: the table in docs/catalog.md)",
        f"  training     {', '.join(f'{t}: {v}' for t, v in f.trains_on_inputs.items()) or 'unknown'}",
        f"  retention    {'unknown' if f.retention_days is None else f'{f.retention_days} days'}",
        f"  residency    {', '.join(f.residency) or 'unknown'}",
        f"  enterprise   {'unknown' if f.enterprise_controls is None else f.enterprise_controls}",
        f"  certified    {', '.join(f.certifications) or 'unknown'}",
        f"  headquarters {f.headquarters or 'unknown'}",
    ]
    lines += [f"  source of {key}: {url}" for key, url in f.sources.items()]
    if p.lifecycle:
        lines.append(f"  lifecycle    {p.lifecycle.describe()} (source: {p.lifecycle.source})")
    if p.notes:
        lines.append(f"  notes        {p.notes}")
    return lines


def stats_lines(catalog: Catalog) -> list[str]:
    providers = list(catalog.providers.values())
    per_category = Counter(p.category for p in providers)
    sourced = sum(p.source is not None for p in providers)
    with_facts = sum(bool(p.facts.sources) for p in providers)
    lines = [f"{len(providers)} services, {len(catalog.host_patterns())} host patterns"]
    lines += [f"  {category:<18}{n}" for category, n in per_category.most_common()]
    lines.append(f"with a source and verified date: {sourced}; with risk facts: {with_facts}")
    # Stale: checked more than a year ago; docs/catalog.md says to re-check hosts and facts.
    year_ago = dt.date.today() - dt.timedelta(days=365)
    stale = sorted(p.id for p in providers if p.verified is not None and p.verified < year_ago)
    lines.append(f"stale (verified before {year_ago}): {len(stale)}{': ' if stale else ''}{' '.join(stale)}")
    # Still matched, so their traffic is seen; listed so that an admin can review who still uses them.
    changed = sorted(f"{p.id} ({p.lifecycle.status})" for p in providers if p.lifecycle)
    lines.append(f"renamed, acquired or ended: {len(changed)}{': ' if changed else ''}{' '.join(changed)}")
    return lines


def squid_domains(patterns: Iterable[str]) -> list[str]:
    """Host patterns as a Squid dstdomain list: `*.x` becomes `.x`, which also matches x itself
    (wider than the proxy, which then passes x through if it does not list it); an entry that a
    `.domain` entry already covers is left out, since Squid refuses or warns about such pairs."""
    patterns = set(patterns)
    below = {p[2:] for p in patterns if p.startswith("*.")}

    def covered(name: str) -> bool:  # a parent domain is a `.domain` entry
        labels = name.split(".")
        return any(".".join(labels[i:]) in below for i in range(1, len(labels)))

    domains = [f".{d}" for d in below if not covered(d)]
    domains += [p for p in patterns if not p.startswith("*.") and p not in below and not covered(p)]
    return sorted(domains, key=lambda d: (d.lstrip("."), d))


def diff_lines(old: Catalog, new: Catalog) -> list[str]:
    lines = [f"+ {pid}\t{new.providers[pid].name}" for pid in sorted(new.providers.keys() - old.providers.keys())]
    lines += [f"- {pid}\t{old.providers[pid].name}" for pid in sorted(old.providers.keys() - new.providers.keys())]
    for pid in sorted(old.providers.keys() & new.providers.keys()):
        before, after = old.providers[pid], new.providers[pid]
        added, removed = set(after.hosts) - set(before.hosts), set(before.hosts) - set(after.hosts)
        changed = [
            name
            for name in ("category", "paths", "wire_formats", "sources", "verified", "facts", "lifecycle", "notes")
            if getattr(before, name) != getattr(after, name)
        ]
        if added or removed or changed:
            parts = [*(f"+{h}" for h in sorted(added)), *(f"-{h}" for h in sorted(removed)), *changed]
            lines.append(f"~ {pid}\t{' '.join(parts)}")
    return lines


# --- candidates: what the proxy saw that the catalog does not list ----------------------------


def find_candidates(catalog: Catalog, db: Path, days: int, until: dt.date) -> list[dict]:
    """Sites of unknown AI endpoints in the last `days` days up to `until`, most requests first.

    The proxy records a request as provider 'unknown' when its host is in no catalog entry but its
    method and path matched a wire format. The catalog may have grown since (a newer
    providers.yaml, an overlay given with --extra): hosts it now matches are dropped, and a site
    left with no host is no candidate. A site's counts are the whole site's.
    """
    from shadowgate.report import runner

    # The candidates file is set-up in the weekly report; here its closing SELECT is the section.
    candidates = replace(runner.parse_query(REPORTS_DIR / CANDIDATES_SQL), path=("candidates",), title="Candidates")
    found = []
    for row in _window_rows(catalog, db, days, until, [runner.parse_query(REPORTS_DIR / PERIOD_SQL), candidates]):
        row["hosts"] = [h for h in row["hosts"] if catalog.match_host(h) is None]
        if row["hosts"]:
            found.append(row)
    return found


def find_host_candidates(catalog: Catalog, db: Path, days: int, until: dt.date) -> list[dict]:
    """Sites of uncatalogued hosts whose names look like AI, most people first (host_sightings).

    Names only: the proxy saw a TLS connection, usually not decrypted. Hosts the catalog matches
    now (a newer catalog, an overlay) are dropped, as for find_candidates.
    """
    from shadowgate.report import runner

    query = replace(runner.parse_query(REPORTS_DIR / HOST_CANDIDATES_SQL), path=("candidates",))
    found = []
    for row in _window_rows(catalog, db, days, until, [query], top=1_000_000):
        hosts = [h for h in row["hosts"].split() if catalog.match_host(h) is None]
        if hosts:
            found.append({**row, "hosts": hosts})
    return found


def _window_rows(catalog: Catalog, db: Path, days: int, until: dt.date, queries: list, top: int = 10) -> list[dict]:
    """The last query's rows over the `days` days up to `until`, run as the weekly report runs it."""
    from shadowgate.report import runner
    from shadowgate.report.data import open_data
    from shadowgate.report.period import Period

    if not 1 <= days <= 3660:  # ten years; more would run the start date off the calendar
        raise ValueError("--days must be between 1 and 3660")
    start = until - dt.timedelta(days=days - 1)
    period = Period(start, until + dt.timedelta(days=1), f"{start} .. {until}")
    con, source = open_data(db)
    try:
        report = runner.build_report(
            con,
            source,
            str(db),
            period,
            provider_status={},
            category_status={},
            providers=catalog.providers.values(),
            queries=queries,
            top=top,
        )
    finally:
        con.close()
    return report.section("candidates").records()


def candidate_yaml(catalog: Catalog, row: dict) -> list[str]:
    """A providers: entry for one candidate site that validates as an overlay as it stands.

    Name, vendor and category are guesses to correct; the source and verified date are left as
    comments because only someone who read the vendor's documentation may fill them in. Hosts and
    models come from traffic, so every value is quoted (json is YAML) and a host the catalog would
    reject is left out: a crafted Host header must not write keys into someone's overlay.
    """
    site = row["site"]
    entry_id = re.sub(r"[^a-z0-9-]+", "-", site.lower()).strip("-")[:60] or "unknown-site"
    while entry_id in catalog.providers:  # an overlay entry with a catalogued id would replace that entry
        entry_id += "-local"
    hosts = []
    for host in row["hosts"]:
        try:
            hosts.append(check_host_pattern(host))
        except ValueError:
            continue
    if not hosts:
        return [f"  # {json.dumps(site)}: no host name the catalog accepts (an IPv6 address?); list it by hand"]
    formats = [wf for wf in row["wire_formats"] if wf in catalog.wire_formats]
    models = ", ".join(row["models"][:5]) + (", ..." if len(row["models"]) > 5 else "")
    seen = f"seen {row['first_seen']}..{row['last_seen']}: {row['requests']} requests, {row['users']} users"
    return [
        f"  - id: {entry_id}",
        f"    name: {json.dumps(site)}  # the service's own name",
        f"    vendor: {json.dumps(site)}  # who runs it",
        "    category: api  # or chat-web, coding-assistant, ... (see categories: in providers.yaml)",
        f"    hosts: {json.dumps(hosts)}",
        f"    wire_formats: {json.dumps(formats)}",
        f"    notes: {json.dumps(f'{seen}; models {models}' if models else seen)}",
        "    # source: https://...  the vendor's documentation that names these hosts",
        f"    # verified: {dt.date.today().isoformat()}",
    ]


def run_candidates(args: argparse.Namespace, catalog: Catalog) -> int:
    until = args.until or dt.datetime.now(dt.UTC).date()
    try:
        rows = find_candidates(catalog, Path(args.db).expanduser(), args.days, until)
        hosts = find_host_candidates(catalog, Path(args.db).expanduser(), args.days, until)
    except (FileNotFoundError, ValueError) as e:
        print(f"shadowgate: {e}", file=sys.stderr)
        return 1
    if args.format == "text":
        print(f"{len(rows)} unlisted AI sites in the {args.days} days up to {until}")
        _print_table(
            [
                row["site"],
                f"{row['requests']} requests",
                f"{row['users']} users",
                ",".join(row["wire_formats"]) or "-",
                ",".join(row["models"]) or "-",
                " ".join(row["hosts"]),
            ]
            for row in rows
        )
        print(f"\n{len(hosts)} uncatalogued sites whose names look like AI (connections seen, names only)")
        _print_table(
            [
                h["site"],
                f"{h['users']} users",
                f"{h['connections']} connections",
                h["reason"],
                f"{h['first_seen']}..{h['last_seen']}",
                " ".join(h["hosts"]),
            ]
            for h in hosts
        )
        if rows:
            print("\n# paste into a company overlay (--extra FILE), or research and send upstream:")
    if rows:
        print("providers:")
        for row in rows:
            print("\n".join(candidate_yaml(catalog, row)))
    return 0


def _print_table(rows: Iterable[list[str]]) -> None:
    for columns in rows:
        print("\t".join(_one_line(str(c)) for c in columns))


def _one_line(text: str) -> str:
    """Hosts and models come from traffic: escape control characters so that one row stays one line."""
    return text if text.isprintable() else json.dumps(text)[1:-1]
