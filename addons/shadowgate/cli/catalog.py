"""`shadowgate catalog match`: the proxy's own matcher, for admins asking "do we cover X?"."""

from __future__ import annotations

import sys
from urllib.parse import urlsplit

from shadowgate.config.catalog import Catalog
from shadowgate.config.catalog import load_catalog
from shadowgate.config.catalog import normalise_host
from shadowgate.wireformats import PARSERS
from shadowgate.config.yamlfile import ConfigError


def match_line(catalog: Catalog, target: str, path: str | None = None, method: str = "POST") -> str:
    """HOST<TAB>provider<TAB>category, then <TAB>wire-format:operation when a path is known."""
    target = target.strip()
    url = urlsplit(target if "://" in target else f"//{target}")
    host = normalise_host(url.hostname or target)
    path = path or (url.path if url.path not in ("", "/") else None)
    provider = catalog.match_host(host)
    columns = [host, provider.id, provider.category] if provider else [host, "-"]
    if path:
        route = catalog.route(provider, method.upper(), path)
        if provider is None and route is not None:
            columns = [host, "unknown", "-"]
        columns.append(f"{route.wire_format}:{route.operation}" if route else "-")
    return "\t".join(columns)


def run_match(target: str, path: str | None, method: str, providers: str) -> int:
    try:
        catalog = load_catalog(providers, known_parsers=PARSERS)
    except ConfigError as e:
        print(f"shadowgate: {e}", file=sys.stderr)
        return 2
    if target == "-":
        for line in sys.stdin:
            if line.strip() and not line.lstrip().startswith("#"):
                print(match_line(catalog, line, None, method))
        return 0
    print(match_line(catalog, target, path, method))
    return 0
