"""Catalog coverage on an independent list of AI hosts: the share the proxy's own matcher names.

    uv run python scripts/catalog_coverage.py [--providers FILE] [--list FILE] [--misses]

The list (tests/fixtures/catalog/independent_ai_hosts.txt, made by catalog_independent_list.py)
records its source and commit in its header. A host counts as covered when
`shadowgate catalog match HOST` names a catalog entry; entries of the vendor-site category
(interest, never usage) are counted and also shown apart. Hosts the catalog misses by name but
covers below it (an entry of "*.domain" only) are counted apart, never added to the figure.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from shadowgate.config.catalog import DEFAULT_CATALOG
from shadowgate.config.catalog import load_catalog
from shadowgate.wireformats import PARSERS

DEFAULT_LIST = Path(__file__).resolve().parent.parent / "tests/fixtures/catalog/independent_ai_hosts.txt"


def read_list(path: Path) -> tuple[list[str], list[str]]:
    header, hosts = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            header.append(line[1:].strip())
        elif line.strip():
            hosts.append(line.split("\t", 1)[0].strip())
    return header, hosts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--providers", default=str(DEFAULT_CATALOG))
    parser.add_argument("--list", default=str(DEFAULT_LIST), type=Path)
    parser.add_argument("--misses", action="store_true", help="print every host the catalog misses")
    args = parser.parse_args(argv)
    catalog = load_catalog(args.providers, known_parsers=PARSERS)
    header, hosts = read_list(args.list)
    by_category: Counter[str] = Counter()
    misses = []
    for host in hosts:
        provider = catalog.match_host(host)
        if provider is None:
            misses.append(host)
        else:
            by_category[provider.category] += 1
    covered = len(hosts) - len(misses)
    for line in header[:2]:
        print(f"list: {line}")
    print(f"catalog: {len(catalog.providers)} services from {args.providers}")
    print(f"covered: {covered}/{len(hosts)} = {100 * covered / len(hosts):.1f} %")
    print("by category: " + ", ".join(f"{c} {n}" for c, n in by_category.most_common()))
    # The list's entries are domain rules (the name and every subdomain); a catalog entry that lists
    # only "*.domain" misses the bare name but names the traffic below it. Shown apart, not added in.
    below = [h for h in misses if catalog.match_host(f"probe.{h}") is not None]
    print(
        f"missed by name but covered below it (*.domain entries): {len(below)}"
        + (f" ({', '.join(below)})" if below else "")
    )
    if args.misses:
        print("misses:", *misses, sep="\n  ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
