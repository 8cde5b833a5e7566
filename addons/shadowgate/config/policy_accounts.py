"""The policy's `accounts:` section: the company's own instances of each chat app.

    accounts:
      chatgpt: {workspace_ids: [4f1c...]}          # ChatGPT-Account-Id of the company workspace
      claude: {org_ids: [0b9e...]}                  # the organization UUID in claude.ai paths
      gemini-app: {domains: [corp.example]}         # not observable today: see docs/webapps.md

A web-app request whose account id is listed is `corporate`; one with an id that is not listed is
`other-workspace` (or what the app's endpoint says an unlisted id means); no id at all is what
the endpoint says (ChatGPT: `personal`; signed-out paths: `anonymous`). An app with no entry
here can only be `personal`, `anonymous` or `unknown`: without the company's ids nobody can
tell its workspace from someone else's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from shadowgate.config.yamlfile import ConfigError
from shadowgate.config.yamlfile import line_of
from shadowgate.config.yamlfile import line_of_key

ID_KEYS = ("workspace_ids", "org_ids", "account_ids", "domains")
_APP_ID = re.compile(r"[a-z0-9][a-z0-9-]*")


@dataclass(frozen=True, slots=True)
class AccountsPolicy:
    corporate: dict[str, frozenset[str]] = field(default_factory=dict)  # app id -> its ids, lower-case

    def ids_for(self, app: str) -> frozenset[str] | None:
        """The company's ids for an app; None when the policy names none (corporate is unknowable)."""
        return self.corporate.get(app)


def parse_accounts(path: str | Path, raw: Any) -> AccountsPolicy:
    if not isinstance(raw, dict):
        raise ConfigError(path, line_of(raw), "accounts must map app ids to their company ids")
    corporate: dict[str, frozenset[str]] = {}
    for app, spec in raw.items():
        where = line_of_key(raw, app)
        if not isinstance(app, str) or not _APP_ID.fullmatch(app):
            raise ConfigError(path, where, f"accounts: {app!r} is not an app id (the catalog's provider id)")
        if not isinstance(spec, dict) or not spec or set(map(str, spec)) - set(ID_KEYS):
            raise ConfigError(path, where, f"accounts.{app}: takes {', '.join(ID_KEYS)}, each a list of strings")
        ids: set[str] = set()
        for key, values in spec.items():
            if not isinstance(values, list) or not values or not all(isinstance(v, str) and v.strip() for v in values):
                raise ConfigError(path, line_of_key(spec, key), f"accounts.{app}.{key} must be a list of strings")
            ids.update(v.strip().lower() for v in values)
        corporate[app] = frozenset(ids)
    return AccountsPolicy(corporate)


# --- the web-app match keys of rules and budgets (config/policy.py's Match) --------------------

ACTIVITIES = ("prompt", "upload", "download", "share", "login", "visit", "other")
ACCOUNT_KINDS = ("corporate", "other-workspace", "personal", "anonymous", "unknown")
WEB_MATCH_KEYS = frozenset({"activity", "account", "file_type", "min_file_bytes"})


def web_match(
    path: str | Path, raw: dict, owner: str, where: int | None, strings: Callable[[str], tuple[str, ...] | None]
) -> dict[str, Any]:
    """The Match fields of `activity`, `account`, `file_type` and `min_file_bytes`."""
    out: dict[str, Any] = {}
    for key, field_name, allowed in (("activity", "activities", ACTIVITIES), ("account", "accounts", ACCOUNT_KINDS)):
        values = strings(key)
        if values is None:
            continue
        unknown = sorted(set(values) - set(allowed))
        if unknown:
            raise ConfigError(path, where, f"{owner!r}: match.{key}: {unknown} (one of {', '.join(allowed)})")
        out[field_name] = frozenset(values)
    types = strings("file_type")
    if types is not None:
        out["file_types"] = tuple(t.lower().lstrip(".") for t in types)
    size = raw.get("min_file_bytes")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ConfigError(path, where, f"{owner!r}: match.min_file_bytes must be a whole number >= 0")
        out["min_file_bytes"] = size
    return out
