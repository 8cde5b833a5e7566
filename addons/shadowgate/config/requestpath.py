"""The route a request names, as the upstream server may read it: one normaliser for every match.

A client controls the spelling of its request target, and servers forgive a lot of it: they
decode percent-escapes (`/v1/chat/%63ompletions`), some decode an escaped slash (`%2F`) or take a
backslash for one, collapse `//`, resolve `.` and `..`, drop `;params` (servlet containers) or a
trailing slash, compare case-insensitively (IIS, Azure), or honour a method-override header
(`X-HTTP-Method-Override: POST` on a GET). A proxy that matched the literal target would call
such a request "no route", while the provider serves it as a chat call. So the catalog matches
the readings of a path built here, most literal first, case-insensitively (catalog.py compiles
its endpoint patterns so), and Identify tries every method the request may mean.

The forwarded request is never rewritten: the upstream gets the client's bytes, and a reading
that matches more than the upstream would serve only makes the proxy stricter. A request that
matches in no reading is an unknown endpoint on its host (recorded, and scanned by Redact),
never "not AI".
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping

# Headers through which frameworks (Rails, Express method-override, Google APIs, ASP.NET) let a
# client tunnel another method through the one on the request line.
METHOD_OVERRIDE_HEADERS = ("x-http-method-override", "x-method-override", "x-http-method")
# An escape a server may decode anywhere; %2F and %5C (slash, backslash) only in the loose reading.
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_SLASHES = frozenset({0x2F, 0x5C})
_MAX_DECODE_ROUNDS = 4  # %2563 -> %63 -> c: servers and proxies in front of them decode again


@functools.lru_cache(maxsize=4096)  # paths repeat; a reading costs a few microseconds
def path_readings(target: str) -> tuple[str, ...]:
    """The normalised readings of a request target's path, most literal first (one or two).

    The first keeps escaped slashes escaped (a Bedrock model ARN in one segment is `%2F`-escaped
    and must stay one segment); the second decodes them as well, for servers that do.
    """
    path = target.split("?", 1)[0].split("#", 1)[0]
    strict = _normalise(_decode(path, keep_slashes=True))
    loose = _normalise(_decode(path, keep_slashes=False))
    return (strict,) if loose == strict else (strict, loose)


def request_methods(method: str, headers: Mapping[str, str]) -> tuple[str, ...]:
    """The request line's method, then each distinct method an override header asks for."""
    methods = [method.upper()]
    for name in METHOD_OVERRIDE_HEADERS:
        value = headers.get(name)
        if value:
            override = value.strip().upper()
            if override and override not in methods:
                methods.append(override)
    return tuple(methods)


def _decode(path: str, keep_slashes: bool) -> str:
    """Percent-decoded until stable (a few rounds); escaped slashes kept escaped if asked."""

    def one(match: re.Match[str]) -> str:
        byte = int(match.group(1), 16)
        if keep_slashes and byte in _SLASHES:
            return "%2F"  # one spelling of an escaped slash, whatever case or character it had
        return chr(byte) if byte < 0x80 else match.group(0)

    for _ in range(_MAX_DECODE_ROUNDS):
        decoded = _ESCAPE.sub(one, path)
        if decoded == path:
            break
        path = decoded
    return path


def _normalise(path: str) -> str:
    """Backslashes as slashes, `;params` dropped, empty and dot segments resolved (RFC 3986
    5.2.4), no trailing slash."""
    segments: list[str] = []
    for segment in path.replace("\\", "/").split("/"):
        segment = segment.split(";", 1)[0]
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    return "/" + "/".join(segments)
