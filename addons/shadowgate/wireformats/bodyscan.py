"""DLP over a whole request body, in whatever form it comes: JSON, multipart, JSON lines, text.

The extraction is scope.request_pieces (every string the model, a tool or the provider reads);
this module runs a scanner over it, decides per finding with the policy's action, and builds
the redacted body. Besides each string, the prompt text of a JSON body is scanned joined, so a
value split across adjacent strings or messages ("AKIA" + "Z7Q3...") is found too; its pieces
are redacted where they are, the placeholder in the first. A redaction that cannot be made in
place (an object key that would collide) makes the request blocked instead.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from urllib.parse import quote_plus
from urllib.parse import unquote_plus

from shadowgate.dlp import ScanTimeout

from .base import JsonPath
from .common import dumps_json
from .common import json_unescaped
from .common import loads_lenient
from .common import looks_like_json
from .decoding import UndecodableBody
from .multipart import is_multipart
from .multipart import parse_multipart
from .multipart import replace_parts
from .scope import KeyCollision
from .scope import KeyStep
from .scope import Piece
from .scope import apply_ranges
from .scope import decoded_text
from .scope import request_pieces
from .scope import rewrite

# Characters on each side of a boundary between two prompt strings that are scanned together:
# more than the longest secret a detector matches.
_WINDOW = 512


@dataclass
class BodyScan:
    """One request's scan. scan(text, deadline) gives findings (start, end, type), or raises
    ScanTimeout once time.thread_time() passes deadline (dlp.Scanner.scan); action(type) gives
    redact | block | log | off; placeholder(type, value) names a redacted value."""

    scan: Callable[[str, float], list[Any]]
    action: Callable[[str], str]
    placeholder: Callable[[str, str], str]
    deadline: float  # time.thread_time() past which the scan fails
    include_metadata: bool = False
    counts: Counter = field(default_factory=Counter)
    actions: set[str] = field(default_factory=set)
    split: int = 0  # values found only in the joined text of several strings
    unredactable: bool = False  # a value to redact that cannot be replaced in place: block
    _cache: dict[str, list[Any]] = field(default_factory=dict, repr=False)
    _redactions: int = field(default=0, repr=False)  # findings decided "redact" so far

    def _findings(self, text: str, visible: str | None = None) -> list[tuple[int, int, str | None]]:
        """(start, end, replacement) for each finding, the replacement None unless it is to be
        redacted; counts every finding. visible: for another reading of a string, the string
        itself; a value found as it stands there is the same finding, not counted again."""
        if time.thread_time() > self.deadline:
            raise ScanTimeout("the scan ran out of time")
        # A request repeats its keys and structure values ("type", "description") hundreds of
        # times; each distinct string is scanned once (a scan costs tens of µs however short).
        scanned = self._cache.get(text)
        if scanned is None:
            scanned = self._cache[text] = self.scan(text, self.deadline)
        out = []
        for f in scanned:
            if visible is not None and text[f.start : f.end] in visible:
                continue
            verdict = self.action(f.type)
            if verdict == "off":
                continue
            self.counts[f.type] += 1
            self.actions.add(verdict)
            new = self.placeholder(f.type, text[f.start : f.end]) if verdict == "redact" else None
            self._redactions += new is not None
            out.append((f.start, f.end, new))
        return out

    def text(self, text: str) -> str:
        ranges = _to_redact(self._findings(text))
        unescaped = json_unescaped(text)
        if unescaped != text and _to_redact(self._findings(unescaped, text)):
            # Found only once JSON escapes are undone (a reader that takes the text for JSON
            # does): nowhere literally in the text to redact, so refused instead.
            self.unredactable = True
        return apply_ranges(text, ranges) if ranges else text

    def json(self, body: Any) -> Any:
        """The body with what must be redacted redacted (the same object when nothing was)."""
        pieces = list(request_pieces(body, self.include_metadata))
        found = {i: hits for i, piece in enumerate(pieces) if (hits := self._findings(piece.text))}
        for piece in pieces:
            for other in piece.also:  # another reading of the same bytes: nothing to redact in place
                if _to_redact(self._findings(other, piece.text)):
                    self.unredactable = True
        ranges = {i: redacted for i, hits in found.items() if (redacted := _to_redact(hits))}
        self._joined(pieces, found, ranges)
        values: dict[JsonPath, str] = {}
        keys: dict[JsonPath, str] = {}
        for i, spans in ranges.items():
            piece = pieces[i]
            new = apply_ranges(piece.text, spans)
            if piece.encode is not None:
                new = piece.encode(new)
            (keys if isinstance(piece.path[-1] if piece.path else None, KeyStep) else values)[piece.path] = new
        if not values and not keys:
            return body
        try:
            cleaned = rewrite(body, values, keys)
        except KeyCollision:
            self.unredactable = True
            return body
        # A redaction only in a value a repeated key shadows leaves the copy equal to the body
        # (it holds each key once, the last value): still a new object, so the caller writes it
        # out, and the bytes sent never hold the shadowed value (red-team F2).
        return _fresh(body) if cleaned is body else cleaned

    def _joined(
        self, pieces: list[Piece], found: dict[int, list[tuple[int, int, str | None]]],
        ranges: dict[int, list[tuple[int, int, str]]],
    ) -> None:  # fmt: skip
        """Scan the prompt strings joined, and redact a value that spans several of them.

        The whole join finds a value cut in many pieces; a window around each boundary finds a
        value cut in two even where the text on either side glues onto it (a key's trailing
        word boundary lost to the next message's first letters). A joined match that overlaps
        a value found inside one string is that value grown by the glue, not a split one."""
        segments = [(i, p.text) for i, p in enumerate(pieces) if p.prompt and p.encode is None]
        if len(segments) < 2:
            return
        starts, pos = [], 0
        for _, text in segments:
            starts.append(pos)
            pos += len(text)
        joined = "".join(text for _, text in segments)
        spans: list[tuple[int, int, str]] = []
        known = [(starts[k] + a, starts[k] + b) for k, (i, _) in enumerate(segments) for a, b, _ in found.get(i, ())]
        windows = [(0, len(joined))]
        windows += [
            (max(s - _WINDOW, starts[k - 1]), min(s + _WINDOW, s + len(segments[k][1])))
            for k, s in enumerate(starts)
            if k
        ]
        for low, high in windows:
            if time.thread_time() > self.deadline:
                raise ScanTimeout("the scan ran out of time")
            for f in self.scan(joined[low:high], self.deadline):
                start, end = low + f.start, low + f.end
                inside = any(s <= start and end <= s + len(segments[k][1]) for k, s in enumerate(starts))
                taken = [(a, b) for a, b, _ in spans] + known
                if not inside and not any(a < end and start < b for a, b in taken):
                    spans.append((start, end, f.type))
        for start, end, type_ in spans:
            self._split(segments, starts, joined, start, end, type_, ranges)

    def _split(
        self, segments: list[tuple[int, str]], starts: list[int], joined: str, start: int, end: int, type_: str,
        ranges: dict[int, list[tuple[int, int, str]]],
    ) -> None:  # fmt: skip
        verdict = self.action(type_)
        if verdict == "off":
            return
        self.split += 1
        self.counts[type_] += 1
        self.actions.add(verdict)
        if verdict != "redact":
            return
        self._redactions += 1
        name = self.placeholder(type_, joined[start:end])
        covered = [k for k, s in enumerate(starts) if s < end and s + len(segments[k][1]) > start]
        for n, k in enumerate(covered):
            index, text = segments[k]
            local = (max(start - starts[k], 0), min(end - starts[k], len(text)))
            ranges.setdefault(index, []).append((*local, name if n == 0 else ""))

    def content(self, content: bytes, content_type: str, parsed: Any) -> bytes | None:
        """The redacted body bytes, or None when nothing changed. parsed: the body's JSON value,
        when it is JSON. Raises UndecodableBody (a body that looks like JSON and does not
        parse among them), ScanTimeout. A redaction decided that leaves the bytes as they came
        makes the request unredactable (blocked): the original bytes never go out after it."""
        before = self._redactions
        out = self._content(content, content_type, parsed)
        if out is None and self._redactions > before:
            self.unredactable = True
        return out

    def _content(self, content: bytes, content_type: str, parsed: Any) -> bytes | None:
        if parsed is not None:
            cleaned = self.json(parsed)
            return None if cleaned is parsed else self._dumps(cleaned)
        if is_multipart(content_type):
            parts = parse_multipart(content, content_type)
            new = {}
            for i, part in enumerate(parts):
                changed = self._document(content[part.start : part.end])
                if changed is not None:
                    new[i] = changed
            return replace_parts(content, new, parts) if new else None
        if _is_form(content_type):
            return self._form(content)
        return self._document(content, fallback=True, content_type=content_type)

    def _form(self, content: bytes) -> bytes | None:
        """An urlencoded form, each name and value read as the server decodes it (`+` a space,
        %XX undone): as raw text, `with+AKIA...` reads as one base64-like word and hides the key.
        A changed name or value is written back percent-encoded; other pairs keep their bytes."""
        pairs = content.split(b"&")
        changed = False
        for i, pair in enumerate(pairs):
            fields = pair.split(b"=", 1)
            decoded = [unquote_plus(f.decode("latin-1"), encoding="utf-8", errors="replace") for f in fields]
            cleaned = [self.text(text) for text in decoded]
            if cleaned == decoded:
                continue
            if any("\ufffd" in text for text in decoded):
                self.unredactable = True  # bytes that are not UTF-8 would not come back as they were
                continue
            pairs[i] = b"=".join(quote_plus(text).encode() for text in cleaned)
            changed = True
        return b"&".join(pairs) if changed else None

    def _document(self, data: bytes, fallback: bool = False, content_type: str = "") -> bytes | None:
        """A text document (a form field, a file, a plain body): JSON lines are read as JSON,
        other text as text. Binary data is not text: None (passed as it is), unless `fallback`,
        where it is read as UTF-8 with replacement characters, as before; a whole body (fallback)
        that looks like JSON but does not parse is UndecodableBody."""
        text = decoded_text(data)
        binary = text is None
        if text is None:
            if not fallback:
                return None
            text = data.decode("utf-8", "replace")
        error: Exception | None = None
        try:  # one JSON document, over several lines or not
            value = loads_lenient(text)
        except (ValueError, RecursionError) as e:
            value, error = None, e
        if isinstance(value, dict | list):
            cleaned = self.json(value)
            return None if cleaned is value else self._dumps(cleaned)
        lines = _json_lines(text)
        if lines is None and error is not None and fallback and looks_like_json(text, content_type):
            # The upstream reads it as JSON (red-team F1): scanned as text, its escapes would
            # hide a secret, and its model is unknown to the policy.
            raise UndecodableBody(f"it looks like JSON but the proxy cannot parse it: {str(error)[:120]}")
        if lines is not None:
            out, changed = [], False
            for line, value in lines:
                if value is None:
                    out.append(line)
                    continue
                cleaned = self.json(value)
                changed = changed or cleaned is not value
                out.append(line if cleaned is value else self._dumps(cleaned).decode())
            return "\n".join(out).encode() if changed else None
        cleaned_text = self.text(text)
        if binary:
            # Read with replacement characters (protobuf, a binary upload): its text can be
            # found, not written back without corrupting the rest. content() makes a redaction
            # here unredactable: the request is refused.
            return None
        return None if cleaned_text == text else cleaned_text.encode()

    def _dumps(self, value: Any) -> bytes:
        return dumps_json(value).encode()


def _is_form(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded"


def _fresh(body: Any) -> Any:
    return list(body) if isinstance(body, list) else dict(body) if isinstance(body, dict) else body


def _to_redact(hits: list[tuple[int, int, str | None]]) -> list[tuple[int, int, str]]:
    return [(start, end, new) for start, end, new in hits if new is not None]


def _json_lines(text: str) -> list[tuple[str, Any]] | None:
    """Each line with its JSON value (None for a blank line), when every other line is JSON."""
    if not text.lstrip().startswith(("{", "[")):
        return None
    out: list[tuple[str, Any]] = []
    for line in text.split("\n"):
        if not line.strip():
            out.append((line, None))
            continue
        try:
            out.append((line, loads_lenient(line)))
        except (ValueError, RecursionError):
            return None
    return out


__all__ = ["BodyScan", "ScanTimeout", "UndecodableBody"]
