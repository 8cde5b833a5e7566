"""--providers and --extra: the catalog files a command reads, as the proxy's options name them.

Every command that looks a host up, checks a policy or names an app takes both, so that a company
overlay (`--set shadowgate_providers_extra=FILE` on the proxy) is seen by `policy check`, `policy
explain`, `pac`, `report`, `serve` and `webapps check` exactly as the running proxy sees it.
"""

from __future__ import annotations

import argparse

from shadowgate.config.catalog import DEFAULT_CATALOG
from shadowgate.config.catalog import Catalog
from shadowgate.config.catalog import load_configured_catalog


def add_catalog_arguments(parser: argparse.ArgumentParser, providers_help: str = "the catalog") -> None:
    parser.add_argument(
        "--providers",
        default=str(DEFAULT_CATALOG),
        metavar="FILE",
        help=f"{providers_help} (default: the shipped providers.yaml; the proxy's shadowgate_providers)",
    )
    parser.add_argument(
        "--extra",
        action="append",
        default=[],
        metavar="FILE",
        help="a company overlay over the catalog, merged as the proxy merges shadowgate_providers_extra; "
        "repeat for several, in the proxy's order",
    )


def catalog_from_arguments(args: argparse.Namespace) -> Catalog:
    """The catalog --providers and --extra name, loaded by the proxy's own loader (ConfigError)."""
    return load_configured_catalog(args.providers, args.extra)
