"""Cached bytecode for every Python process the suite starts, kept out of the source tree.

Where PYTHONDONTWRITEBYTECODE is set (as on the shared machine) and the installed packages come
without .pyc files (uv installs none by default), every process compiled every module it
imported from source, every time: an xdist worker its SDKs (openai, anthropic, google-genai),
each mitmdump start all of shadowgate (~1 s of CPU), each `shadowgate` command the same again.
The suite then writes bytecode under one prefix (.pytest_cache/pycache, which git ignores)
instead of beside the sources, for itself and, through the environment, for every process it
starts. Python checks each cached file against its source's size and time, as it always does.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def cache_bytecode(root: Path) -> None:
    """From now on this process, and every process it starts, caches bytecode under one prefix
    (PYTHONPYCACHEPREFIX if set, else ROOT/.pytest_cache/pycache)."""
    if not (sys.dont_write_bytecode or os.environ.get("PYTHONDONTWRITEBYTECODE")):
        return  # bytecode is cached beside the sources already
    prefix = os.environ.setdefault("PYTHONPYCACHEPREFIX", str(root / ".pytest_cache" / "pycache"))
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.pycache_prefix = prefix
    sys.dont_write_bytecode = False
