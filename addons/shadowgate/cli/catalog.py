"""`shadowgate catalog`: the proxy's own matcher and the catalog's contents, for admins.

    match HOST [PATH]     which service a host (and path) belongs to; '-' reads hosts from stdin
    list                  every service: id, category, risk level, name
    show ID               one service with its hosts, source, verified date and risk facts
    stats                 services per category, and how many carry a source and risk facts
    validate FILE         check a catalog or a company overlay (--extra) the way the proxy would
    diff OLD NEW          services and hosts added, removed or changed between two catalogs

Every command takes --providers (default: the shipped providers.yaml) and --extra FILE (a
company overlay, repeatable), merged exactly as the proxy merges them.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from urllib.parse import urlsplit

from shadowgate.config.catalog import DEFAULT_CATALOG
from shadowgate.config.catalog import Catalog
from shadowgate.config.catalog import load_catalog
from shadowgate.config.catalog import normalise_host
from shadowgate.config.yamlfile import ConfigError
from shadowgate.wireformats import PARSERS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="catalog_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--providers", default=str(DEFAULT_CATALOG))
    common.add_argument("--extra", action="append", default=[], help="a company overlay file (repeatable)")
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
    diff = sub.add_parser("diff", parents=[common], help="what changed between two catalogs")
    diff.add_argument("old")
    diff.add_argument("new")


def run(args: argparse.Namespace) -> int:
    try:
        if args.catalog_command == "diff":
            old = load_catalog(args.old, known_parsers=PARSERS, extra=args.extra)
            new = load_catalog(args.new, known_parsers=PARSERS, extra=args.extra)
            print("\n".join(diff_lines(old, new)) or "no changes")
            return 0
        catalog = load_catalog(getattr(args, "file", None) or args.providers, known_parsers=PARSERS, extra=args.extra)
    except ConfigError as e:
        print(f"shadowgate: {e}", file=sys.stderr)
        return 2
    command = args.catalog_command
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
    else:
        print(f"ok: {len(catalog.providers)} services, {len(catalog.host_patterns())} host patterns ({catalog.source})")
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
        lines.append(f"  paths        {', '.join(p.paths)}")
    lines += [
        f"  wire formats {', '.join(p.wire_formats) or '-'}",
        f"  source       {p.source or '-'} (verified {p.verified or 'never'})",
        f"  risk         {p.risk} ({f.risk_points} points: see shadowgate/config/catalog_facts.py)",
        f"  training     {', '.join(f'{t}: {v}' for t, v in f.trains_on_inputs.items()) or 'unknown'}",
        f"  retention    {'unknown' if f.retention_days is None else f'{f.retention_days} days'}",
        f"  residency    {', '.join(f.residency) or 'unknown'}",
        f"  enterprise   {'unknown' if f.enterprise_controls is None else f.enterprise_controls}",
        f"  certified    {', '.join(f.certifications) or 'unknown'}",
        f"  headquarters {f.headquarters or 'unknown'}",
    ]
    lines += [f"  source of {key}: {url}" for key, url in f.sources.items()]
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
    return lines


def diff_lines(old: Catalog, new: Catalog) -> list[str]:
    lines = [f"+ {pid}\t{new.providers[pid].name}" for pid in sorted(new.providers.keys() - old.providers.keys())]
    lines += [f"- {pid}\t{old.providers[pid].name}" for pid in sorted(old.providers.keys() - new.providers.keys())]
    for pid in sorted(old.providers.keys() & new.providers.keys()):
        before, after = old.providers[pid], new.providers[pid]
        added, removed = set(after.hosts) - set(before.hosts), set(before.hosts) - set(after.hosts)
        changed = [
            name
            for name in ("category", "paths", "source", "verified", "facts", "notes")
            if getattr(before, name) != getattr(after, name)
        ]
        if added or removed or changed:
            parts = [*(f"+{h}" for h in sorted(added)), *(f"-{h}" for h in sorted(removed)), *changed]
            lines.append(f"~ {pid}\t{' '.join(parts)}")
    return lines
