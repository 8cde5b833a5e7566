"""Scanner (run the detectors, resolve overlaps), redact() and Placeholders."""

from __future__ import annotations

import bisect
import re
import time
from collections.abc import Callable
from collections.abc import Collection
from collections.abc import Mapping
from collections.abc import Sequence
from operator import attrgetter
from types import MappingProxyType

from . import credentials
from . import names
from . import nationalids
from . import pii
from . import servicekeys
from . import splitkeys
from .encoded import Run
from .encoded import base64_classes
from .encoded import encoded_runs
from .encoded import hidden_runs
from .encoded import may_hold_runs
from .model import SECRET
from .model import TYPES
from .model import Detector
from .model import Finding
from .model import Hits
from .model import Source
from .normalize import normalize

DETECTORS: tuple[Detector, ...] = (
    servicekeys.DETECTOR,
    splitkeys.DETECTOR,
    *credentials.DETECTORS,
    *pii.DETECTORS,
    *nationalids.DETECTORS,
)
# Run only for a scanner that asks for their types (a policy's dlp.types naming them).
OPT_IN_DETECTORS: tuple[Detector, ...] = tuple(names.OPT_IN_DETECTORS)
OPT_IN_TYPES = frozenset(names.OPT_IN_TYPES)

# On the same span a service's own type beats these (GITHUB_TOKEN over the GENERIC_SECRET that a
# `token = "ghp_..."` assignment also yields).
_GENERIC_TYPES = frozenset({"GENERIC_SECRET", "PASSWORD", "URL_PASSWORD"})

# A run decoded from base64, base32, hex, percent-encoding, backslash escapes or HTML references is
# scanned like any text, runs inside it too, but no deeper than this: each level costs a scan, and doubly encoded is what a person bothers with.
MAX_DECODE_DEPTH = 2
# The view is read only this far around what normalisation changed (then on to white space): a
# text with one fullwidth colon is not read twice. Far more than a key or an identifier and the
# word that names it.
_VIEW_REACH = 256
_RUN_GAP = "\n\n\n"
# How far back a decoded run is read with the words before it (a name and its `: "`).
_NAME_REACH = 40


# A scan whose caller gives no deadline may use this much CPU time, at least DEFAULT_BUDGET_S and
# DEFAULT_BUDGET_S_PER_CHAR per character: four times what the densest real text needs (~0.25 us
# per character), so only a text built to be slow reaches it (the slowest measured, 1 MB of
# "1.1.1.1 " repeated, ~1.1 us per character): a 1 MB MCP tool result holds the event loop for
# about a second at most.
DEFAULT_BUDGET_S = 0.25
DEFAULT_BUDGET_S_PER_CHAR = 1e-6
# A shorter text is scanned without a clock: it takes milliseconds at most, even built to be slow
# (tests/test_dlp.py bounds every hostile text at a small multiple of clean text), and a caller
# checks its deadline between strings; the clock would cost ~10 % of a short prompt's scan.
_CLOCKED_CHARS = 4096


class ScanTimeout(Exception):
    """The scan used up its CPU time (Scanner.scan's deadline): a caller that must fail closed
    refuses what it was scanning."""


class _Clock:
    """The deadline of one scan, checked between detectors and between the passes of the scan.

    time.thread_time costs ~1.2 us (a system call), and a scan passes ~30 checkpoints; so each
    checkpoint reads the wall clock (~0.1 us) and asks for the thread's CPU time only once the
    wall time since the start exceeds the CPU time that was left then. A thread cannot use more
    CPU time than wall time passes, so the deadline cannot have passed before that."""

    __slots__ = ("deadline", "slack", "wall")

    def __init__(self, deadline: float | None, chars: int) -> None:
        now = time.thread_time()
        if deadline is None:
            deadline = now + max(DEFAULT_BUDGET_S, chars * DEFAULT_BUDGET_S_PER_CHAR)
        self.deadline = deadline
        self.slack = deadline - now
        self.wall = time.perf_counter()

    def check(self) -> None:
        if time.perf_counter() - self.wall > self.slack and time.thread_time() > self.deadline:
            raise ScanTimeout("the scan ran out of time")


def resolve_overlaps(findings: Sequence[Finding]) -> list[Finding]:
    """Non-overlapping findings in text order. Where findings overlap, a secret beats personal
    data, then the longer one wins, then a service's own type beats a generic one, and an
    identifier named by the word before it ("TFN 876 543 210") beats the number shapes (a phone)."""
    # Only findings that overlap compete: the text-ordered findings are cut into groups that
    # overlap among themselves, and only a group of two or more is ranked. Most findings of a
    # dense text overlap nothing, and ranking them all cost a twentieth of its scan.
    ordered = sorted((f for f in findings if f.end > f.start), key=_START_END)
    kept: list[Finding] = []
    group: list[Finding] = []
    reach = -1
    for f in ordered:
        if f.start >= reach and group:
            kept.extend(group if len(group) == 1 else _rank_group(group))
            group = []
        group.append(f)
        reach = max(reach, f.end) if len(group) > 1 else f.end
    if group:
        kept.extend(group if len(group) == 1 else _rank_group(group))
    return kept


_START_END = attrgetter("start", "end")


def _rank_group(findings: Sequence[Finding]) -> list[Finding]:
    ranked = sorted(
        findings,
        key=lambda f: (f.kind != SECRET, f.start - f.end, f.type in _GENERIC_TYPES, f.detector != "named_id", f.start),
    )
    starts: list[int] = []
    kept: list[Finding] = []
    for f in ranked:
        i = bisect.bisect_left(starts, f.start)
        if i > 0 and kept[i - 1].end > f.start:
            continue
        if i < len(kept) and kept[i].start < f.end:
            continue
        starts.insert(i, f.start)
        kept.insert(i, f)
    return kept


class Scanner:
    """Finds secrets and personal data in text. No I/O; thread-safe once built.

    types: the finding types to report (see TYPES); None reports every default type. opt_in: the
    opt-in types (OPT_IN_TYPES: person names) to report as well; a `types` that names one asks
    for it too. Unknown names raise ValueError, so a typo in a policy fails at load time rather
    than silently scanning for less.
    """

    def __init__(self, types: Collection[str] | None = None, opt_in: Collection[str] = ()) -> None:
        extra = frozenset(opt_in)
        wanted = None if types is None else frozenset(types) | extra
        unknown = sorted((wanted or frozenset()) - TYPES.keys())
        if unknown:
            raise ValueError(f"unknown DLP finding type(s): {', '.join(unknown)}")
        if extra - OPT_IN_TYPES:
            raise ValueError(f"not opt-in DLP finding type(s): {', '.join(sorted(extra - OPT_IN_TYPES))}")
        self._opt_in = extra if wanted is None else wanted & OPT_IN_TYPES
        self._types: frozenset[str] | None = wanted
        if wanted is None:
            self._detectors = DETECTORS + tuple(d for d in OPT_IN_DETECTORS if d.types & extra)
        else:
            self._detectors = tuple(d for d in DETECTORS + OPT_IN_DETECTORS if d.types & wanted)
        self._with: dict[frozenset[str], Scanner] = {}

    @property
    def types(self) -> frozenset[str]:
        return (frozenset(TYPES) - OPT_IN_TYPES) | self._opt_in if self._types is None else self._types

    def including(self, opt_in: Collection[str]) -> Scanner:
        """This scanner, also reporting the opt-in types in opt_in (built once per set, then
        reused: a policy's opted-in types are the same on every request)."""
        extra = frozenset(opt_in) - self._opt_in
        if not extra:
            return self
        found = self._with.get(extra)
        if found is None:
            types = None if self._types is None else self._types | extra
            found = self._with[extra] = Scanner(types, self._opt_in | extra)
        return found

    def scan(self, text: str, deadline: float | None = None) -> list[Finding]:
        """Findings sorted by start, each spanning a whole value, never overlapping but in one
        case: an encoded run (base64, base32, hex, percent-encoding, backslash escapes, HTML
        references) that holds values of several types gives one finding per type, each spanning
        the whole run (so a policy that blocks any of the types sees it).

        The detectors read the text itself and its normalised view (dlp.normalize: format
        characters removed, NFKC, look-alike letters folded), whose findings are mapped back to
        the text's offsets; and the text of every encoded run (dlp.encoded), whose findings span
        the whole run. Plain ASCII text with no control character, no "%", "\\" or "&" and no
        long base64-like run is read once.

        deadline: the time.thread_time() past which the scan raises ScanTimeout, checked between
        detectors and passes (so it overruns by at most one detector's pass over the text, each
        linear in the text's length), not for a text under _CLOCKED_CHARS; None gives the scan
        DEFAULT_BUDGET_S, or DEFAULT_BUDGET_S_PER_CHAR per character if more. A proxy passes its
        request's budget: one huge string must not hold a thread (or the event loop) for as long
        as it takes.

        It does not catch its own errors: a caller that must fail closed blocks on any exception.
        """
        return self._scan(text, 0, _Clock(deadline, len(text)) if len(text) >= _CLOCKED_CHARS else None)

    def _scan(self, text: str, depth: int, clock: _Clock | None) -> list[Finding]:
        src = Source(text)
        hits = self._match(src, clock)
        if clock:
            clock.check()
        view = normalize(text)
        if view is not None:
            for lo, hi in view.windows(_VIEW_REACH):
                for f in self._match(Source(view.text[lo:hi]), clock):
                    start, end = view.span(lo + f.start, lo + f.end)
                    hits.append(Finding(start, end, f.type, f.detector, f.kind))
        runs: dict[tuple[int, int], list[Finding]] = {}
        readable = text if view is None else view.text
        # the text's own Latin-1 bytes serve again (a third of the cost of finding no run)
        classes = b"" if depth >= MAX_DECODE_DEPTH else base64_classes(readable, None if view else src.latin1)
        if depth < MAX_DECODE_DEPTH and may_hold_runs(readable, classes):
            secrets = sorted((f.start, f.end) for f in hits if f.kind == SECRET)
            starts, ends = [s for s, _ in secrets], [e for _, e in secrets]
            original = (lambda s, e: (s, e)) if view is None else view.span
            # A run inside a secret already found is redacted with it: most keys look like
            # base64, and decoding each of them would cost a tenth of a dense scan.
            batch = [
                (*original(run.start, run.end), run)
                for run in encoded_runs(readable, lambda s, e: _inside(starts, ends, *original(s, e)), classes)
            ]
            if clock:
                clock.check()
            decoded = self._scan_decoded(readable, [r for _, _, r in batch], depth + 1, clock)
            for (start, end, run), inner in zip(batch, decoded):
                if run.secrets_only:
                    inner = [f for f in inner if f.kind == SECRET]
                if inner:
                    found = _run_findings(start, end, run.encoding, inner)
                    hits.append(found[0])
                    runs[(start, end)] = found
        # The view spells tag characters as ASCII where they stand (`AKIA` + tags reads whole);
        # each run of them, and of variation selectors spelling bytes, is read as a value of its
        # own too, since one glued to a word (`hello<tags>`) is no word of its own in the view.
        hidden = hidden_runs(text) if depth < MAX_DECODE_DEPTH else []
        for run, inner in zip(hidden, self._scan_decoded(text, hidden, depth + 1, clock)):
            if inner:
                found = _run_findings(run.start, run.end, run.encoding, inner)
                hits.append(found[0])
                runs[(run.start, run.end)] = found
        if clock:
            clock.check()
        _add_repeats(text, hits, clock)
        kept = resolve_overlaps(hits)
        return _with_run_types(kept, runs) if runs else kept

    def _scan_decoded(self, text: str, runs: Sequence[Run], depth: int, clock: _Clock | None) -> list[list[Finding]]:
        """The findings in each run's decoded text, read after the words before the run on its line
        in text (see _words_before): `api_token: \\x61bc...` names the value its run holds. A
        finding counts for a run when it reaches into the decoded text, not when it lies in those
        words alone. The texts are scanned as one, apart by blank lines: a scan has a fixed cost
        (~50 us) that a text of many short runs would pay per run. A finding that reaches over a
        gap counts for each run it touches."""
        if not runs:
            return []
        pieces: list[str] = []
        offsets: list[int] = []  # where each run's decoded text starts in the joined text
        at = 0
        for run in runs:
            before = _words_before(text, run.start)
            if before[-1:].isalnum():
                before += " "  # a run glued to a word (`0x414b...`): the decoded value starts a word
            pieces.append(before + run.decoded)
            offsets.append(at + len(before))
            at += len(pieces[-1]) + len(_RUN_GAP)
        per_run: list[list[Finding]] = [[] for _ in runs]
        for f in self._scan(_RUN_GAP.join(pieces), depth, clock):
            k = max(0, bisect.bisect_right(offsets, f.start) - 1)
            while k < len(runs) and offsets[k] < f.end:
                if f.start < offsets[k] + len(runs[k].decoded):
                    per_run[k].append(f)
                k += 1
        return per_run

    def _match(self, src: Source, clock: _Clock | None) -> Hits:
        hits = Hits()
        for detector in self._detectors:
            if clock:
                clock.check()
            detector.run(src, hits)
        if self._types is not None:
            hits = Hits(f for f in hits if f.type in self._types)
        return hits


def _words_before(text: str, start: int) -> str:
    """The words before text[start] on its line, _NAME_REACH characters at most, not starting
    inside a word: where a value's name stands (`api_token: `, `"password": "`)."""
    lo = max(0, start - _NAME_REACH)
    line = text.rfind("\n", lo, start)
    if line >= 0:
        return text[line + 1 : start]
    if lo:
        space = text.find(" ", lo, start)
        lo = space + 1 if space >= 0 else start
    return text[lo:start]


def _inside(starts: Sequence[int], ends: Sequence[int], start: int, end: int) -> bool:
    """Whether [start, end) lies inside the last of the sorted spans (starts[i], ends[i]) that
    starts at or before it. (Two lists of ints: a bisect over tuples cost a tenth of finding
    no run in a dense text.)"""
    k = bisect.bisect_right(starts, start) - 1
    return k >= 0 and ends[k] >= end


def _run_findings(start: int, end: int, encoding: str, inner: Sequence[Finding]) -> list[Finding]:
    """One finding per type found in a decoded run, all spanning the encoded run, secrets first."""
    by_type: dict[str, Finding] = {}
    for f in sorted(inner, key=lambda f: f.kind != SECRET):
        by_type.setdefault(f.type, Finding(start, end, f.type, f"{encoding}:{f.detector}", f.kind))
    return list(by_type.values())


def _with_run_types(kept: list[Finding], runs: Mapping[tuple[int, int], list[Finding]]) -> list[Finding]:
    """kept, with the other types of each run that survived after its first finding."""
    out: list[Finding] = []
    for f in kept:
        out.append(f)
        same_run = runs.get((f.start, f.end))
        if same_run and same_run[0] is f:
            out.extend(same_run[1:])
    return out


# Detectors whose findings depend on a name or word next to the value.
_CONTEXT_DETECTORS = frozenset({"assignment", "cli", "de_tax_id", "nl_bsn", "us_passport", "us_ssn", "named_id"})
_REPEAT_VALUES_MAX = 32
_REPEAT_MIN = 6  # shorter values (a 4-digit PIN found after "pin") are too common to chase
_WORD_CHAR = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")


def _add_repeats(text: str, hits: Hits, clock: _Clock | None) -> None:
    """Every other occurrence of a value found once: a password found after `password=` that the
    prompt repeats without its name, or an id found after its context word, is as sensitive the
    second time. Only whole-token occurrences count (not inside a longer word)."""
    if len(hits) == 0:
        return
    seen: set[tuple[str, str]] = set()
    found = {(f.start, f.end) for f in hits}
    for f in list(hits):
        if f.detector not in _CONTEXT_DETECTORS:
            continue  # a value found by its own shape is found by it wherever it repeats
        value = text[f.start : f.end]
        if len(value) < _REPEAT_MIN or (value, f.type) in seen:
            continue
        if len(seen) == _REPEAT_VALUES_MAX:
            break  # each value is one pass over the text: a dump of secrets keeps its cost linear
        seen.add((value, f.type))
        if clock:
            clock.check()
        at = text.find(value)
        while at >= 0:
            end = at + len(value)
            if (
                (at, end) not in found
                and not (at and text[at - 1] in _WORD_CHAR)
                and not (end < len(text) and text[end] in _WORD_CHAR)
            ):
                hits.append(Finding(at, end, f.type, f.detector, f.kind))
                found.add((at, end))
            at = text.find(value, at + 1)


def redact(text: str, findings: Sequence[Finding], placeholder: Callable[[Finding], str]) -> str:
    """text with every finding replaced by placeholder(finding). Findings may come in any order;
    where two overlap, the first placeholder also covers the rest of the second, so no part of a
    value survives."""
    out: list[str] = []
    pos = 0
    for f in sorted(findings, key=lambda f: (f.start, -f.end)):
        if f.end <= pos:
            continue
        if f.start < pos:
            pos = f.end
            continue
        out.append(text[pos : f.start])
        out.append(placeholder(f))
        pos = f.end
    out.append(text[pos:])
    return "".join(out)


_PLACEHOLDER_RX = re.compile(r"\[([A-Z][A-Z0-9_]*)_([0-9]+)\]")


class Placeholders:
    """Typed, numbered placeholders for one request: [EMAIL_1], [EMAIL_2], [AWS_ACCESS_KEY_1].

    The same value of the same type always gets the same placeholder, in every text of the
    request (use one instance for all its messages); a different value gets the next number. The
    reverse mapping stays in this object's memory only, for restoring the response.

        ph = Placeholders()
        safe = redact(text, scanner.scan(text), ph.for_text(text))
        ... ph.restore(model_output)
    """

    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._originals: dict[str, str] = {}
        self._counts: dict[str, int] = {}

    def placeholder(self, type_: str, value: str) -> str:
        key = (type_, value)
        found = self._by_value.get(key)
        if found is None:
            n = self._counts.get(type_, 0) + 1
            self._counts[type_] = n
            found = f"[{type_}_{n}]"
            self._by_value[key] = found
            self._originals[found] = value
        return found

    def for_text(self, text: str) -> Callable[[Finding], str]:
        """The placeholder callable for redact(text, ...)."""
        return lambda f: self.placeholder(f.type, text[f.start : f.end])

    @property
    def mapping(self) -> Mapping[str, str]:
        """placeholder -> original value (read-only view)."""
        return MappingProxyType(self._originals)

    def restore(self, text: str) -> str:
        """text with every placeholder this object issued replaced by its original value."""
        if "[" not in text:
            return text
        return _PLACEHOLDER_RX.sub(lambda m: self._originals.get(m.group(), m.group()), text)
