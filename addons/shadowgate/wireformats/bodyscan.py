"""DLP over a whole request body, in whatever form it comes: JSON, multipart, JSON lines, text.

The extraction is scope.request_pieces (every string the model, a tool or the provider reads);
this module runs a scanner over it, decides per finding with the policy's action, and builds
the redacted body. Besides each string, the prompt text of a JSON body is scanned joined, so a
value split across adjacent strings or messages ("AKIA" + "Z7Q3...") is found too; its pieces
are redacted where they are, the placeholder in the first. The other strings of the body
(tool schemas, enum values, stop sequences, a tool call's JSON arguments) are joined the same
way without the structure between them (adjacent_texts), for the keys of a format that stands
on its own. A redaction that cannot be made in place (an object key that would collide, a part
of a value inside a string's JSON document, a JSON number) makes the request blocked instead.
"""

from __future__ import annotations

import bisect
import itertools
import re
import time
from collections import Counter
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from urllib.parse import quote_plus
from urllib.parse import unquote_plus

from shadowgate.dlp import TYPES
from shadowgate.dlp import ScanTimeout
from shadowgate.dlp.model import SECRET
from shadowgate.dlp.tokenids import token_prompts

from .base import JsonPath
from .common import dumps_json
from .common import json_unescaped
from .common import loads_lenient
from .common import looks_like_json
from .decoding import TextReading
from .decoding import UndecodableBody
from .decoding import grpc_messages
from .decoding import is_grpc
from .decoding import protobuf_fields
from .decoding import read_text
from .multipart import declared_charset
from .multipart import is_multipart
from .multipart import parse_multipart
from .multipart import replace_parts
from .scope import KeyCollision
from .scope import KeyStep
from .scope import Piece
from .scope import apply_ranges
from .scope import joined_numbers
from .scope import request_pieces
from .scope import rewrite

# Characters on each side of a boundary between two prompt strings that are scanned together:
# more than the longest secret a detector matches.
_WINDOW = 512
# The same for the other strings of a body, joined for the keys of a format that stands on its own
# (JOINED_STRUCTURE_TYPES): longer than any of those but PEM blocks and long JWTs.
_KEY_WINDOW = 256
_PLAIN = re.compile(r"[a-z_]*")
_BLANK = re.compile(r"\s")
Range = tuple[int, int, str]  # (start, end, replacement) in one string
Hit = tuple[int, int, str | None, str]  # (start, end, replacement or None, type) in one string


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

    def _findings(self, text: str, visible: str | None = None, keep: Callable[[Any], bool] | None = None) -> list[Hit]:
        """(start, end, replacement, type) for each finding, the replacement None unless it is to
        be redacted; counts every finding. visible: for another reading of a string, the string
        itself; a value found as it stands there is the same finding, not counted again. keep:
        which findings count (the others are not findings of this text)."""
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
            if keep is not None and not keep(f):
                continue
            verdict = self.action(f.type)
            if verdict == "off":
                continue
            self.counts[f.type] += 1
            self.actions.add(verdict)
            new = self.placeholder(f.type, text[f.start : f.end]) if verdict == "redact" else None
            self._redactions += new is not None
            out.append((f.start, f.end, new, f.type))
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
        numbers = [piece for piece in pieces if piece.digits_at is not None]
        if numbers:
            self._numbers(numbers)
            pieces = [piece for piece in pieces if piece.digits_at is None]
        for prompt in token_prompts(body):
            # A prompt written as token ids (dlp.tokenids): no placeholder can be put in it.
            if _to_redact(self._findings(prompt)):
                self.unredactable = True
        ranges = self.pieces(pieces)
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

    def pieces(self, pieces: Sequence[Piece], own: Callable[[Piece], bool] | None = None) -> dict[int, list[Range]]:
        """Scan a body's strings (no number among them): each on its own, then joined (the prompt
        pieces among themselves, then every piece without the structure between them), and count
        what is found. Returns, by piece index, the (start, end, placeholder) to redact; a value
        split across pieces has its placeholder in the first and its other parts emptied.

        own: which pieces are scanned on their own here (all by default); the others take part in
        the joins only, for a caller that scans each string by rules of its own (a chat app's body,
        stages.webapps). json() is this with the body's pieces, and the rewrite."""
        found = {
            i: hits
            for i, piece in enumerate(pieces)
            if (own is None or own(piece)) and (hits := self._findings(piece.text))
        }
        for piece in pieces:
            if own is not None and not own(piece):
                continue
            for other in piece.also:  # another reading of the same bytes: nothing to redact in place
                if _to_redact(self._findings(other, piece.text)):
                    self.unredactable = True
        ranges = {i: redacted for i, hits in found.items() if (redacted := _to_redact(hits))}
        prompts: list[tuple[int | None, str]] = [
            (i, p.text) for i, p in enumerate(pieces) if p.prompt and p.encode is None
        ]
        done = self._joined(prompts, found, ranges)
        mixed, groups = adjacent_texts(pieces)
        if any(i is None or not pieces[i].prompt for i, _ in mixed):
            prompt = [i is not None and pieces[i].prompt for i, _ in mixed]
            self._joined(mixed, found, ranges, done, only_mixed=prompt, groups=groups)
        return ranges

    def _numbers(self, numbers: list[Piece]) -> None:
        """Scan the JSON numbers (scope.number_reading), all in one text. A number cannot take a
        placeholder without becoming a string, which the schema or the tool that reads it would
        reject: a value to redact there refuses the request instead."""
        text, counts = joined_numbers([(piece.text, piece.digits_at or 0) for piece in numbers])
        if _to_redact(self._findings(text, keep=counts)):
            self.unredactable = True

    def _joined(
        self, segments: list[tuple[int | None, str]], found: dict[int, list[Hit]],
        ranges: dict[int, list[tuple[int, int, str]]], done: Sequence[tuple[int, int, int]] = (),
        only_mixed: list[bool] | None = None, groups: list[Any] | None = None,
    ) -> list[tuple[int, int, int]]:  # fmt: skip
        """Scan texts joined in order (segments: (piece index, text); None for a text that is no
        piece, such as a string inside a tool call's JSON arguments), and redact a value that
        spans several of them. Returns the (piece index, start, end) of each such value.

        The whole join finds a value cut in many pieces; a window around each boundary finds a
        value cut in two even where the text on either side glues onto it (a key's trailing
        word boundary lost to the next message's first letters). A joined match that overlaps
        a value found inside one string, or one found before (done), is that value, not a new one,
        except for a key of a format that stands on its own over values of personal data inside
        it: the key is the value (a piece cut to look like a postcode is no postcode), and the
        pieces' findings give way to it (_give_way).

        only_mixed: for each segment, whether it is prompt text. The prompt texts were joined
        among themselves already: then only the boundaries next to another text are read, in
        windows and in the runs they make. groups: for each segment, what holds it (an array,
        an object); in a run, a blank goes between two segments of different holders, so that a
        value cut across the items of one array (`enum`, `stop`) does not glue onto the name
        before them (see _holder)."""
        if len(segments) < 2:
            return []
        starts, pos = [], 0
        for _, text in segments:
            starts.append(pos)
            pos += len(text)
        joined = "".join(text for _, text in segments)
        where = {i: k for k, (i, _) in enumerate(segments) if i is not None}
        # (start, end) in joined of each value found before; kinds: for a piece's own finding of
        # personal data, its (piece index, hit), which a key across it may take over.
        known = [
            (starts[k] + hit[0], starts[k] + hit[1])
            for k, (i, _) in enumerate(segments)
            if i is not None
            for hit in found.get(i, ())
        ]
        personal = {
            (starts[k] + hit[0], starts[k] + hit[1]): (i, hit)
            for k, (i, _) in enumerate(segments)
            if i is not None
            for hit in found.get(i, ())
            if TYPES.get(hit[3]) != SECRET
        }
        known += [(starts[where[i]] + a, starts[where[i]] + b) for i, a, b in done if i in where]
        boundaries = [
            k for k in range(1, len(segments)) if only_mixed is None or not (only_mixed[k - 1] and only_mixed[k])
        ]
        runs: list[tuple[int, int]] = []
        breaks: list[int] = []  # offsets in joined where a run takes a blank
        if only_mixed is None:
            windows = [(0, len(joined))]
            windows += [
                (max(starts[k] - _WINDOW, starts[k - 1]), min(starts[k] + _WINDOW, starts[k] + len(segments[k][1])))
                for k in boundaries
            ]
        else:
            windows, runs = _token_windows([text for _, text in segments], starts, boundaries, only_mixed)
            if groups is not None:
                breaks = [starts[k] for k in range(1, len(segments)) if groups[k] != groups[k - 1]]
        scanned = self._scan_windows(joined, windows, runs, breaks)
        across = []
        for start, end, type_, detector in scanned:
            if only_mixed is not None and (type_ not in JOINED_STRUCTURE_TYPES or detector in _NAMED_BY_CONTEXT):
                continue
            k = bisect.bisect_right(starts, start) - 1
            if end <= starts[k] + len(segments[k][1]):
                known.append((start, end))  # inside one string (of a JSON document in a string, too)
            else:
                across.append((start, end, type_))
        # Each window holds again the values found inside one string: lookups by bisection, so
        # a body of thousands of strings and values is not read quadratically.
        known.sort()
        known_starts = [a for a, _ in known]
        reach_of = list(itertools.accumulate((b for _, b in known), max))  # furthest end so far
        spans: list[tuple[int, int, str]] = []
        for start, end, type_ in across:
            if any(a < end and start < b for a, b, _ in spans):
                continue
            n = bisect.bisect_left(known_starts, end)
            if n and reach_of[n - 1] > start:
                inside = [span for span in known[:n] if span[1] > start]
                if type_ not in JOINED_STRUCTURE_TYPES or not self._give_way(inside, start, end, personal, ranges):
                    continue
            spans.append((start, end, type_))
        out: list[tuple[int, int, int]] = []
        for start, end, type_ in spans:
            out += self._split(segments, starts, joined, start, end, type_, ranges)
        return out

    def _give_way(
        self, inside: list[tuple[int, int]], start: int, end: int,
        personal: dict[tuple[int, int], tuple[int, Hit]], ranges: dict[int, list[Range]],
    ) -> bool:  # fmt: skip
        """Whether the values found before that a key from start to end overlaps (inside) are all
        a piece's own findings of personal data within it; if so they are no longer counted nor
        redacted on their own (red-team F124: `AKIAZ7Q` + `3M5X2R3` + `W4T5YB`, the last a UK
        postcode, is one AWS key)."""
        if not all(span in personal and start <= span[0] and span[1] <= end for span in inside):
            return False
        for span in inside:
            index, (a, b, new, type_) = personal.pop(span)
            self.counts[type_] -= 1
            if not self.counts[type_]:
                del self.counts[type_]
            if new is not None:
                self._redactions -= 1
                ranges[index] = [r for r in ranges[index] if r != (a, b, new)]
        return True

    def _scan_windows(
        self, joined: str, windows: list[tuple[int, int]], runs: list[tuple[int, int]], breaks: list[int]
    ) -> list[tuple[int, int, str, str]]:
        """(start, end, type, detector) in joined of what each window and run of it holds; a run
        takes a blank at each offset of breaks inside it. All are scanned as one text, apart by
        blank lines: a scan has a fixed cost (tens of µs), which a conversation of a hundred
        messages, or a tool schema of thousands of strings, paid per window (a 30-turn agent
        request: 15 ms of its 85)."""
        texts: list[str] = []
        maps: list[tuple[int, list[int]]] = []  # per text: its start in joined, where its blanks are
        for low, high in windows:
            texts.append(joined[low:high])
            maps.append((low, []))
        for low, high in runs:
            inside = breaks[bisect.bisect_right(breaks, low) : bisect.bisect_left(breaks, high)]
            cuts = [low, *inside, high]
            texts.append(" ".join(joined[a:b] for a, b in itertools.pairwise(cuts)))
            maps.append((low, [at - low + n for n, at in enumerate(inside)]))
        if not texts:
            return []
        offsets, at = [], 0
        for text in texts:
            offsets.append(at)
            at += len(text) + len(_GAP)
        if time.thread_time() > self.deadline:
            raise ScanTimeout("the scan ran out of time")
        out = []
        for f in self.scan(_GAP.join(texts), self.deadline):
            k = bisect.bisect_right(offsets, f.start) - 1
            start, end = f.start - offsets[k], f.end - offsets[k]
            if end > len(texts[k]):
                continue  # over a gap into the next text
            low, blanks = maps[k]
            start -= bisect.bisect_left(blanks, start)
            end -= bisect.bisect_left(blanks, end)
            out.append((low + start, low + end, f.type, getattr(f, "detector", "")))
        return out

    def _split(
        self, segments: list[tuple[int | None, str]], starts: list[int], joined: str, start: int, end: int,
        type_: str, ranges: dict[int, list[tuple[int, int, str]]],
    ) -> list[tuple[int, int, int]]:  # fmt: skip
        """Count a value found across segments, and redact it where it lies; its (piece index,
        start, end) in each piece it covers."""
        covered = [k for k, s in enumerate(starts) if s < end and s + len(segments[k][1]) > start]
        parts = [
            (index, max(start - starts[k], 0), min(end - starts[k], len(text)))
            for k in covered
            for index, text in [segments[k]]
            if index is not None
        ]
        verdict = self.action(type_)
        if verdict == "off":
            return parts
        self.split += 1
        self.counts[type_] += 1
        self.actions.add(verdict)
        if verdict != "redact":
            return parts
        self._redactions += 1
        if len(parts) < len(covered):
            self.unredactable = True  # a part lies in a string inside a string: no place to redact it
            return parts
        name = self.placeholder(type_, joined[start:end])
        for n, (index, a, b) in enumerate(parts):
            ranges.setdefault(index, []).append((a, b, name if n == 0 else ""))
        return parts

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
                changed = self._document(
                    content[part.start : part.end], content_type=part.headers.get("content-type", "")
                )
                if changed is not None:
                    new[i] = changed
            return replace_parts(content, new, parts) if new else None
        if _is_form(content_type):
            return self._form(content)
        if is_grpc(content_type):
            # Protobuf messages: their text is scanned (each message's lenient reading), never
            # rewritten: a value to redact refuses the request (content()).
            for message in grpc_messages(content):
                self._document(message, fallback=True)
                self._protobuf_joined(message)
            return None
        return self._document(content, fallback=True, content_type=content_type)

    def _protobuf_joined(self, message: bytes) -> None:
        """The text strings of a protobuf message (a GenerateContentRequest's parts and turns), in
        order and joined, as the JSON path joins a prompt's strings: a key cut across two
        `Part.text` was in no string whole (red-team F112). Never rewritten: a value to redact
        refuses the request. A value cut in more pieces than _PROTOBUF_RUN strings is not found."""
        texts = protobuf_texts(message)
        # Each pair of neighbours alone, so a value glues onto nothing beyond them, and each pair
        # one string apart (a turn's role lies between two turns' text); only a value across
        # their boundary counts (one inside a string was counted already).
        pairs = [*itertools.pairwise(texts), *zip(texts, texts[2:], strict=False)]
        for left, right in pairs:
            head, tail = left[-_WINDOW:], right[:_WINDOW]
            if _to_redact(self._findings(head + tail, keep=_across(len(head)))):
                self.unredactable = True
        # Runs of three or more short neighbours (a key cut in four Part texts: red-team F123),
        # each run read alone, from a string's start to a string's end.
        short = [len(t) <= _PROTOBUF_PIECE for t in texts]
        for i in range(len(texts) if len(texts) <= _PROTOBUF_RUNS_MAX else 0):
            for j in range(i + 3, min(len(texts), i + _PROTOBUF_RUN) + 1):
                if not all(short[i:j]):
                    break
                run = texts[i:j]
                cuts = list(itertools.accumulate(len(t) for t in run[:-1]))
                if _to_redact(self._findings("".join(run), keep=_across_any(cuts))):
                    self.unredactable = True

    def _sdp(self, data: bytes) -> None:
        """A WebRTC session description (a Realtime call's offer): scanned but for the lines that
        are the session's own signalling, whose values are random per call or addresses of the
        caller's machine (ICE credentials, candidates, DTLS fingerprint, connection and origin
        addresses: round-6b G13). Never rewritten (the call would not connect): a value to redact
        refuses it."""
        lines = data.decode("utf-8", "replace").splitlines()
        text = "\n".join(line for line in lines if not line.startswith(_SDP_SIGNALLING))
        if _to_redact(self._findings(text)):
            self.unredactable = True

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
        other text as text, in whatever encoding (decoding.read_text; its other readings are
        scanned too). A known binary format is not text: None (passed as it is), unless
        `fallback`, where it is read as UTF-8 with every other byte kept, and not redacted; a whole body
        (fallback) that looks like JSON but does not parse is UndecodableBody."""
        if _is_sdp(data, content_type):
            self._sdp(data)
            return None
        reading = read_text(data, declared_charset(content_type))
        if fallback and (reading is None or not reading.redactable):
            # A whole body in a binary format (protobuf, Connect): its text is scanned, never
            # rewritten, as a placeholder would break the framing around it; a value to redact
            # there refuses the request.
            text = data.decode("utf-8", "surrogateescape")
            reading = TextReading(text, "utf-8", "surrogateescape", lenient=True, redactable=False)
        if reading is None:
            return None
        if not reading.redactable:  # the printable runs of a binary file: scanned, not rewritten
            if _to_redact(self._findings(reading.text)):
                self.unredactable = True
            return None
        for other in reading.also:  # another reading of the same bytes: nothing to redact in place
            if _to_redact(self._findings(other, reading.text)):
                self.unredactable = True
        text = reading.text
        error: Exception | None = None
        try:  # one JSON document, over several lines or not
            value = loads_lenient(text)
        except (ValueError, RecursionError) as e:
            value, error = None, e
        if isinstance(value, dict | list):
            cleaned = self.json(value)
            return None if cleaned is value else reading.encode(dumps_json(cleaned))
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
                out.append(line if cleaned is value else dumps_json(cleaned))
            return reading.encode("\n".join(out)) if changed else None
        cleaned_text = self.text(text)
        return None if cleaned_text == text else reading.encode(cleaned_text)

    def _dumps(self, value: Any) -> bytes:
        return dumps_json(value).encode()


def _token_windows(
    texts: list[str], starts: list[int], boundaries: list[int], prompt: list[bool]
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Where the structure join reads (offsets in the joined texts): around each boundary k (the
    texts k-1 | k), the last token of the text before it and the first token of the text after
    it, which a value cut there is made of (only a format that stands on its own counts, so the
    words before it do not matter); and the runs of texts that are one token each (no blank, up
    to _KEY_WINDOW characters) with the edge tokens around them, where a value cut in three or
    more pieces lies. Prose is not read again: a 245 KB tool result in JSON cost 110 ms, and 184
    with windows of a few hundred characters."""
    n = len(texts)

    def tail(k: int) -> int:  # str.rsplit and str.split work from the end or start, in C
        text = texts[k][-_KEY_WINDOW:]
        return len(text.rsplit(None, 1)[-1]) if text and not text[-1].isspace() else 0

    def head(k: int) -> int:
        text = texts[k][:_KEY_WINDOW]
        return len(text.split(None, 1)[0]) if text and not text[0].isspace() else 0

    pairs = []
    for k in boundaries:
        if _PLAIN.fullmatch(texts[k - 1]) and _PLAIN.fullmatch(texts[k]):
            continue  # two names glued (`created_at` `size`): no key has only small letters
        before, after = tail(k - 1), head(k)
        if before and after:
            pairs.append((starts[k] - before, starts[k] + after))
    token = [len(t) <= _KEY_WINDOW and _BLANK.search(t) is None for t in texts]
    runs = []
    k = 0
    while k < n:
        if not token[k]:
            k += 1
            continue
        first = k
        while k + 1 < n and token[k + 1]:
            k += 1
        last = k
        k += 1
        if all(prompt[first : last + 1]):
            continue  # joined with the other prompt texts already
        before = tail(first - 1) if first else 0
        after = head(last + 1) if last + 1 < n else 0
        if (last - first + 1) + (before > 0) + (after > 0) >= 3:  # fewer: a pair's window
            runs.append((starts[first] - before, starts[last] + len(texts[last]) + after))
    return pairs, runs


def adjacent_texts(pieces: Sequence[Piece]) -> tuple[list[tuple[int | None, str]], list[Any]]:
    """The texts a model reads one after the other, in document order, and what holds each: every
    string of the body but the structure around them (field names such as `type` or
    `description`, their constant values such as `string`, ids), and for a string that is a JSON
    document (function-call arguments, a tool result), its strings instead (not pieces: None).
    Two `enum` values, a property name and its description, a function's name and description,
    or a tool call's argument and the tool result are then adjacent, as they are to the model
    (red-team F30)."""
    out: list[tuple[int | None, str]] = []
    groups: list[Any] = []
    for i, piece in enumerate(pieces):
        if piece.encode is not None or _structure(piece):
            continue
        inner = _json_document(piece.text)
        if inner is None:
            out.append((i, piece.text))
            groups.append(_holder(piece.path))
        else:
            for holder, text in _inner_strings(inner):
                if text not in STRUCTURE_WORDS:
                    out.append((None, text))
                    groups.append((piece.path, holder))
    return out, groups


def _inner_strings(node: Any) -> list[tuple[int, str]]:
    """The keys and strings of a JSON value in document order, each with a number for what holds
    it (see _holder: the items of one array share theirs). Iterative, and nothing but the walk:
    a tool result of thousands of strings is read in a few ms."""
    out: list[tuple[int, str]] = []
    stack: list[tuple[Any, int]] = [(node, -1)]
    count = 0
    while stack:
        value, holder = stack.pop()
        count += 1
        if isinstance(value, str):
            out.append((holder if holder >= 0 else count, value))
        elif isinstance(value, dict):
            for key, item in reversed(value.items()):
                stack += [(item, -1), (key, -1)]
        elif isinstance(value, list):
            stack += [(item, count) for item in reversed(value)]
    return out


def _holder(path: JsonPath) -> JsonPath:
    """What a run joins a string with, glue and all: the other items of its array (`enum`, `stop`);
    any other string stands apart (a blank between)."""
    return path[:-1] if path and type(path[-1]) is int else path


def _structure(piece: Piece) -> bool:
    if piece.text in STRUCTURE_WORDS:
        return True
    key = piece.path[-1] if piece.path else None
    return isinstance(key, str) and key in ID_KEYS


def _json_document(text: str) -> Any:
    """The value of a string that is a JSON object or array (up to _MAX_INNER_JSON characters),
    else None."""
    head = text.lstrip()[:1]
    if head not in ("{", "[") or len(text) > _MAX_INNER_JSON:
        return None
    try:
        value = loads_lenient(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict | list) else None


# Field names of the AI APIs and of JSON Schema, and the constant values of their `type`, `role`
# and the like: the structure between the texts of a request, left out of its adjacent texts
# (adjacent_texts). A key cut at one of these words is not joined.
STRUCTURE_WORDS = frozenset(
    """
    type object string integer number boolean array null properties required items enum const default
    description title format pattern minimum maximum minLength maxLength minItems maxItems
    additionalProperties anyOf oneOf allOf not $ref $defs definitions examples example nullable strict
    $schema uniqueItems exclusiveMinimum exclusiveMaximum multipleOf patternProperties propertyNames
    readOnly writeOnly deprecated contentEncoding contentMediaType date-time date uri email uuid
    model messages role content user assistant system developer tool tools function functions name
    parameters arguments tool_calls tool_call_id id text input input_schema tool_use tool_result
    tool_use_id output instructions stop stop_sequences stopSequences response_format json_schema
    json_object schema temperature top_p top_k max_tokens max_completion_tokens max_output_tokens stream
    contents parts functionCall functionResponse functionDeclarations function_declarations args response
    systemInstruction system_instruction generationConfig tool_choice toolConfig auto none any image_url
    url detail input_text output_text message function_call function_call_output call_id custom
    is_error cache_control ephemeral source media_type data mimeType inlineData fileData thought
    reasoning summary status completed in_progress mcp server_label server_url allowed_tools
    """.split()
)
# What a value split across the strings of a body's structure may be: a key of a format that
# stands on its own (a fixed prefix, a checksum or a fixed structure). Names, ids and paths glued
# together make long runs of letters and digits, which the types found by their context or their
# look alone (a generic secret after a name, an AWS secret key near an access key, a password,
# personal data by its shape) would take for values.
JOINED_STRUCTURE_TYPES = frozenset(t for t, kind in TYPES.items() if kind == SECRET) - {
    "GENERIC_SECRET", "PASSWORD", "URL_PASSWORD", "AWS_SECRET_KEY", "AZURE_STORAGE_KEY",
    "AZURE_SHARED_ACCESS_KEY", "AZURE_SAS_TOKEN", "JENKINS_CREDENTIAL",
}  # fmt: skip
# Detectors that find a value by the name before it (`token = ...`, `--password ...`).
_NAMED_BY_CONTEXT = frozenset({"assignment", "cli"})
# Keys whose values are ids the API or the client minted, not text.
ID_KEYS = frozenset({"id", "tool_call_id", "call_id", "tool_use_id", "item_id", "previous_response_id"})
_MAX_INNER_JSON = 256 * 1024
_GAP = "\n\n\n"  # between texts scanned together: no value spans a blank line


def _across(cut: int) -> Callable[[Any], bool]:
    """Keeps the findings that span offset `cut`."""
    return lambda f: f.start < cut < f.end


def _across_any(cuts: list[int]) -> Callable[[Any], bool]:
    """Keeps the findings that span one of the offsets `cuts`."""
    return lambda f: any(f.start < cut < f.end for cut in cuts)


def protobuf_texts(message: bytes, depth: int = 0) -> list[str]:
    """The UTF-8 text strings of a protobuf message at any depth, in order: a length-delimited
    field that reads as text is a string, one that walks as a message is descended into."""
    fields = protobuf_fields(message) if depth < _PROTOBUF_DEPTH else None
    out: list[str] = []
    for _number, value in fields or ():
        if not isinstance(value, bytes) or not value:
            continue
        # A message first (a Part's bytes start with its tag, 0x0a, which also reads as text);
        # one holding no text at all was text that happened to walk ("hi" is field 13 = 105).
        inner = protobuf_texts(value, depth + 1)
        if inner:
            out += inner
            continue
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if all(c.isprintable() or c in "\n\r\t" for c in text):
            out.append(text)
    return out


_PROTOBUF_DEPTH = 32
_PROTOBUF_PIECE = 64  # a string this short may be a piece of a value cut across several
_PROTOBUF_RUN = 8  # the most strings a run of pieces spans
_PROTOBUF_RUNS_MAX = 2000  # messages with more strings are read in pairs only


# SDP lines that carry the session's signalling (RFC 8839 ICE, RFC 8122 fingerprint, RFC 8866
# origin and connection), not anything a person wrote.
_SDP_SIGNALLING = ("a=ice-pwd:", "a=ice-ufrag:", "a=candidate:", "a=fingerprint:", "a=rtcp:", "c=", "o=")


def _is_sdp(data: bytes, content_type: str) -> bool:
    """An SDP body: declared (application/sdp), or a part that starts as one must (`v=0`)."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/sdp" or (media in ("", "text/plain") and data.startswith((b"v=0\r\n", b"v=0\n")))


def _is_form(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/x-www-form-urlencoded"


def _fresh(body: Any) -> Any:
    return list(body) if isinstance(body, list) else dict(body) if isinstance(body, dict) else body


def _to_redact(hits: list[Hit]) -> list[tuple[int, int, str]]:
    return [(start, end, new) for start, end, new, _ in hits if new is not None]


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
