"""Data files the package needs at run time: the catalog and the report SQL.

In a wheel they are package data under shadowgate/data/ (pyproject.toml force-includes them);
in a checkout they sit at the repository root, where people edit them. One lookup serves both, so
no code path reads tests/ or depends on the working directory.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_CHECKOUT = _PACKAGE.parents[1]  # addons/shadowgate -> the repository root


def data_path(name: str) -> Path:
    """The shipped copy of a top-level data file or folder (providers.yaml, reports)."""
    packaged = _PACKAGE / "data" / name
    if packaged.exists():
        return packaged
    return _CHECKOUT / name


PROVIDERS_YAML = data_path("providers.yaml")
REPORTS_DIR = data_path("reports")
DEMO_CASES = _PACKAGE / "demo" / "cases"
# In a folder of its own: mitmproxy leaves the script's folder on sys.path, which must not
# make the package's subpackages importable as top-level names.
ENTRY_SCRIPT = _PACKAGE / "script" / "load_shadowgate.py"
UPSTREAM_REDIRECT_SCRIPT = _PACKAGE / "demo" / "upstream_redirect.py"
