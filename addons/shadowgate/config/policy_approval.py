"""Approval of risky MCP tool calls (OWASP LLM08): the `mcp.approval` section and the server
entries' `approve_tools` / `approve_arguments`.

    mcp:
      approval:
        notify: [secops]            # alerts.destinations names: webhook or e-mail
        timeout: 5m                 # no decision by then: refused (fail closed)
        max_held: 32                # calls waiting at once in one proxy process; more are refused
        max_held_per_user: 4
        approvers: {group: sre}     # who may decide (user, group globs); omitted: anyone with the link
        self_approval: false        # the person whose agent made the call may not decide it
        link_host: shadowgate.approval
      servers:
        - id: github
          host: github-mcp.corp.example
          approve_tools: ["merge_*"]
          approve_arguments: ['(?i)\\bprod(uction)?\\b']   # any string in the arguments (keys too)

A call needs approval when its tool matches an `approve_tools` glob or any string (or number) in
its arguments matches an `approve_arguments` regex. docs/mcp.md describes the flow.
"""

from __future__ import annotations

import fnmatch
import html
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from shadowgate.config.policy_alerts import duration_seconds
from shadowgate.config.yamlfile import ConfigError
from shadowgate.config.yamlfile import line_of_key
from shadowgate.config.yamlfile import mapping_line
from shadowgate.config.yamlfile import one_or_more
from shadowgate.config.yamlfile import whole_number
from shadowgate.wireformats.scope import nested_json_texts

APPROVAL_KEYS = {"notify", "timeout", "max_held", "max_held_per_user", "approvers", "self_approval", "link_host"}
SERVER_KEYS = {"approve_tools", "approve_arguments"}
DEFAULT_LINK_HOST = "shadowgate.approval"
MAX_TIMEOUT = 86400.0
_HOST = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")
_MAX_ARGUMENT_STRINGS = 10_000  # strings looked at per call: deeper or longer lists need approval
# Characters an identity never holds: an LDAP search filter's specials (RFC 4515: `*` matches
# anyone, the rest build filters) and a glob's (the configured approvers are globs).
_NOT_IN_IDENTITY = frozenset("*()\\\0?[]")
_NOT_IN_PATTERN = frozenset("()\\\0")
# RFC 4518 section 2.2 (Map): mapped to nothing, besides every other control (Cc) and format (Cf)
# character; the line and tab controls are mapped to a space.
_LDAP_NOTHING = frozenset("\u00ad\u1806\u034f\u180b\u180c\u180d\u180f\ufffc" + "".join(map(chr, range(0xFE00, 0xFE10))))
_LDAP_SPACES = str.maketrans(dict.fromkeys("\t\n\x0b\x0c\r\x85", " "))


def canonical_identity(value: object, pattern: bool = False) -> str | None:
    """The one form in which a requester, an approver and the configured approvers are compared,
    or None for a value that names nobody.

    The identity sources compare names loosely: an LDAP directory matches user names
    case-insensitively, after Unicode compatibility folding and with runs of spaces as one
    (RFC 4518 string preparation), so `ALICE`, ` alice ` and fullwidth `ａｌｉｃｅ` log in as the
    same alice. Compared raw, they were three people and alice could approve her own call. Here
    each becomes NFKC, case-folded, trimmed and space-collapsed text; empty text, characters
    a directory prohibits (unassigned, private use, surrogates), and `*` and the other filter
    or glob specials name nobody. pattern=True: a configured glob, whose `*`, `?` and `[...]`
    are its syntax.

    Before that, the characters the directory maps to nothing go, as it maps them (RFC 4518
    section 2.2): soft hyphens, the grapheme joiner, variation selectors, zero-width and the
    other format and control characters (in a name from the wire; in a configured glob they
    name nobody). `al<U+00AD>ice` binds as alice: kept as typed, it was a stranger to alice's
    group, rules and budgets (red-team F39)."""
    if not isinstance(value, str):
        return None
    if not pattern:  # a configured glob with such characters is a mistake: it names nobody
        spaced = value.translate(_LDAP_SPACES)
        value = "".join(c for c in spaced if c not in _LDAP_NOTHING and unicodedata.category(c) not in ("Cc", "Cf"))
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", value).casefold())
    text = " ".join(text.split())
    if not text or any(unicodedata.category(c)[0] == "C" for c in text):
        return None
    banned = _NOT_IN_PATTERN if pattern else _NOT_IN_IDENTITY
    return text if banned.isdisjoint(text) else None


@dataclass(frozen=True, slots=True)
class ApprovalRule:
    """One server entry's approval triggers."""

    tools: tuple[str, ...] = ()  # globs, in tool_form
    arguments: tuple[re.Pattern[str], ...] = ()

    def reason(self, tool: str | None, arguments: Any) -> str | None:
        """Why a tools/call needs approval, or None. A call without a string tool name needs it
        whenever this entry has any trigger (a lax server may still run some tool). Names are
        compared in tool_form: holding `MERGE_PR` too is safe, letting it through unheld is not."""
        if tool is None:
            return "a call without a tool name"
        name = tool_form(tool)
        if any(fnmatch.fnmatchcase(name, p) for p in self.tools):
            return f"tool {tool}"
        if self.arguments:
            strings: list[str] = []
            if not _argument_strings(arguments, strings):
                return "arguments too large to check"
            strings += decoded_readings(strings)
            for pattern in self.arguments:
                if any(pattern.search(s) for s in strings):
                    return f"an argument matches {pattern.pattern}"
        return None


def tool_form(name: str) -> str:
    """A tool name as approve_tools compares it: NFKC, case-folded, without format characters
    (zero-width, bidi), without white space at either end. A server that looks tool names up
    loosely runs `MERGE_PR`, fullwidth `ｍｅｒｇｅ_pr`, `merge\u200b_pr` or a trimmed
    `" merge_pr"` (red-team F58) as merge_pr; compared raw they went unheld."""
    text = unicodedata.normalize("NFKC", name).casefold()
    return "".join(c for c in text if unicodedata.category(c) != "Cf").strip()


def decoded_readings(strings: list[str]) -> list[str]:
    """What a tool reads in these strings that they do not hold as they stand (red-team F61): the
    strings of a JSON document inside one (`"{\\"env\\": \\"pr\\u006fd\\"}"`, escapes undone), its
    %XX escapes undone (a URL's `?env=pr%6fd`), its HTML references undone (`pr&#111;d`)."""
    out: list[str] = []
    for text in strings:
        out += nested_json_texts(text)
        if "%" in text and (plain := unquote(text, errors="replace")) != text:
            out.append(plain)
        if "&" in text and (plain := html.unescape(text)) != text:
            out.append(plain)
    return out


def _argument_strings(value: Any, out: list[str]) -> bool:
    """Every key, string and number in a JSON value; False when there are too many to look at."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            out.extend(k for k in item if isinstance(k, str))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            out.append(item)
        elif isinstance(item, (int, float)) and not isinstance(item, bool):
            out.append(str(item))
        if len(out) > _MAX_ARGUMENT_STRINGS:
            return False
    return True


@dataclass(frozen=True, slots=True)
class ApprovalPolicy:
    notify: tuple[str, ...]
    timeout: float = 300.0
    max_held: int = 32
    max_held_per_user: int = 4
    approver_users: tuple[str, ...] | None = None  # globs; None with groups None: anyone
    approver_groups: tuple[str, ...] | None = None
    self_approval: bool = False
    link_host: str = DEFAULT_LINK_HOST
    line: int = 0

    def may_decide(self, user: str | None, group: str | None) -> bool:
        """Whether this person may decide: both sides in canonical_identity form (the patterns
        were made so when the policy was read)."""
        if self.approver_users is None and self.approver_groups is None:
            return True
        user, group = canonical_identity(user), canonical_identity(group)
        users, groups = self.approver_users or (), self.approver_groups or ()
        return (user is not None and any(fnmatch.fnmatchcase(user, p) for p in users)) or (
            group is not None and any(fnmatch.fnmatchcase(group, p) for p in groups)
        )


def parse_server_approval(
    path: str | Path, raw: dict, server_id: str, globs: Callable[[str], tuple[str, ...] | None]
) -> ApprovalRule | None:
    """A server entry's approve_tools (globs) and approve_arguments (regexes), or None."""
    tools = globs("approve_tools") or ()
    patterns = []
    value = raw.get("approve_arguments")
    if value is not None:
        values = value if isinstance(value, list) else [value]
        for v in values:
            if not isinstance(v, str) or not v:
                raise ConfigError(
                    path,
                    line_of_key(raw, "approve_arguments"),
                    f"mcp server {server_id!r}: approve_arguments is a regex or a list of regexes",
                )
            try:
                patterns.append(re.compile(v))
            except re.error as e:
                raise ConfigError(
                    path, line_of_key(raw, "approve_arguments"), f"mcp server {server_id!r}: approve_arguments: {e}"
                ) from None
    if not tools and not patterns:
        return None
    return ApprovalRule(tools=tuple(tool_form(t) for t in tools), arguments=tuple(patterns))


def parse_approval(path: str | Path, raw: Any) -> ApprovalPolicy:
    line = mapping_line(path, raw, APPROVAL_KEYS, "mcp.approval must be a mapping", "mcp.approval")
    notify_error = "mcp.approval.notify names one or more alerts.destinations"
    notify = one_or_more(path, raw.get("notify"), line, notify_error)
    if notify is None:
        raise ConfigError(path, line, notify_error)
    timeout = duration_seconds(
        path, raw.get("timeout", 300), line_of_key(raw, "timeout") or line, "mcp.approval.timeout"
    )
    if not 1 <= timeout <= MAX_TIMEOUT:
        raise ConfigError(path, line_of_key(raw, "timeout") or line, "mcp.approval.timeout is from 1s to 1d")
    numbers = {
        key: whole_number(path, raw, key, default, line_of_key(raw, key) or line, f"mcp.approval.{key}", 10_000)
        for key, default in (("max_held", 32), ("max_held_per_user", 4))
    }
    self_approval = raw.get("self_approval", False)
    if not isinstance(self_approval, bool):
        raise ConfigError(
            path, line_of_key(raw, "self_approval") or line, "mcp.approval.self_approval is true or false"
        )
    link_host = str(raw.get("link_host", DEFAULT_LINK_HOST)).lower()
    if not _HOST.match(link_host):
        raise ConfigError(path, line_of_key(raw, "link_host") or line, "mcp.approval.link_host is a host name")
    users = groups = None
    approvers = raw.get("approvers")
    if approvers is not None:
        if not isinstance(approvers, dict) or not approvers or set(map(str, approvers)) - {"user", "group"}:
            raise ConfigError(path, line_of_key(raw, "approvers") or line, "mcp.approval.approvers takes user, group")
        users, groups = (
            _patterns(path, one_or_more(path, approvers.get(k), line, f"mcp.approval.approvers.{k} is a glob or a list of globs"), line, k)
            for k in ("user", "group")
        )  # fmt: skip
    return ApprovalPolicy(
        notify=notify,
        timeout=timeout,
        max_held=numbers["max_held"],
        max_held_per_user=numbers["max_held_per_user"],
        approver_users=users,
        approver_groups=groups,
        self_approval=self_approval,
        link_host=link_host,
        line=line,
    )


def _patterns(path: str | Path, globs: tuple[str, ...] | None, line: int, key: str) -> tuple[str, ...] | None:
    """Configured approver globs in canonical_identity form, as the names they are matched with."""
    if globs is None:
        return None
    out = []
    for glob in globs:
        canonical = canonical_identity(glob, pattern=True)
        if canonical is None:
            raise ConfigError(
                path,
                line,
                f"mcp.approval.approvers.{key}: {glob!r} is not a name (empty, or control or filter characters)",
            )
        out.append(canonical)
    return tuple(out)


def check_approval(path: str | Path, approval: ApprovalPolicy | None, rules: list[str], destinations: set[str]) -> None:
    """Cross-section checks: approval rules need an approval section, whose notify names must be
    alert destinations (a held call nobody hears of can only time out)."""
    if rules and approval is None:
        raise ConfigError(path, 0, f"mcp server {rules[0]!r} asks for approval: add mcp.approval with notify")
    if approval is None:
        return
    missing = [n for n in approval.notify if n not in destinations]
    if missing:
        raise ConfigError(path, approval.line, f"mcp.approval.notify: {missing[0]!r} is not in alerts.destinations")
