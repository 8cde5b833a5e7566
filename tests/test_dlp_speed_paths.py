"""The shortcuts the scanner takes for speed give the same answers as the plain way."""

from __future__ import annotations

import bisect
import re

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from shadowgate.dlp.model import _NEEDLES
from shadowgate.dlp.model import Finding
from shadowgate.dlp.model import Source
from shadowgate.dlp.pii import _END
from shadowgate.dlp.pii import _END_IP
from shadowgate.dlp.pii import _NUMBER_FINDER
from shadowgate.dlp.pii import _NUMBER_SHAPES
from shadowgate.dlp.pii import _NUMBER_STARTS
from shadowgate.dlp.pii import _NUMBER_STARTS_NUMERIC
from shadowgate.dlp.pii import _candidates
from shadowgate.dlp.scanner import _GENERIC_TYPES
from shadowgate.dlp.scanner import resolve_overlaps  # also registers every detector's literals


def _rank_everything(findings: list[Finding]) -> list[Finding]:
    """The overlap rule applied to all findings at once (what resolve_overlaps did before it
    ranked only the groups that overlap)."""
    ranked = sorted(
        findings,
        key=lambda f: (
            f.kind != "secret",
            f.start - f.end,
            f.type in _GENERIC_TYPES,
            f.detector != "named_id",
            f.start,
        ),
    )
    starts: list[int] = []
    kept: list[Finding] = []
    for f in ranked:
        if f.end <= f.start:
            continue
        i = bisect.bisect_left(starts, f.start)
        if (i > 0 and kept[i - 1].end > f.start) or (i < len(kept) and kept[i].start < f.end):
            continue
        starts.insert(i, f.start)
        kept.insert(i, f)
    return kept


_FINDING = st.builds(
    lambda start, length, type_, detector, kind: Finding(start, start + length, type_, detector, kind),
    st.integers(0, 80),
    st.integers(0, 20),
    st.sampled_from(["GENERIC_SECRET", "PASSWORD", "AWS_ACCESS_KEY", "EMAIL", "PHONE", "US_SSN"]),
    st.sampled_from(["named_id", "phone", "assignment"]),
    st.sampled_from(["secret", "pii"]),
)


@settings(max_examples=600, deadline=None)
@given(st.lists(_FINDING, max_size=16))
def test_ranking_only_overlapping_groups_keeps_what_ranking_everything_keeps(findings):
    assert resolve_overlaps(findings) == _rank_everything(findings)


# --- The number candidates: the refined start search drops only starts no shape fits ----------

_OLD_NUMBER_STARTS = (re.compile(rb" 0(?=[0 .]{5})"), re.compile(rb" \+(?=0)"))  # before the look-ahead held the shapes
_NUMBER_TOKENS = st.one_of(
    st.text("0123456789", min_size=1, max_size=14),
    st.sampled_from([" ", "  ", ".", "-", "/", "(", ")", "(0)", " (", ") ", "+", ":", ",", "\n", "T", "a", "X", "é"]),
)


def _shape_text(first: str, rest: str) -> st.SearchStrategy[str]:
    """Strings of one number shape (its look-arounds left out: a superset of what it matches)."""
    pattern = re.sub(r"\(\?<=[^()]*\)", "", first + rest.replace(_END, "").replace(_END_IP, ""))
    return st.from_regex(pattern, fullmatch=True)


_NUMBER_TEXTS = st.one_of(
    st.lists(_NUMBER_TOKENS, max_size=24).map("".join),
    st.tuples(
        st.lists(_NUMBER_TOKENS, max_size=3).map("".join),
        st.one_of(*(_shape_text(first, rest) for _, first, rest in _NUMBER_SHAPES)),
        st.lists(_NUMBER_TOKENS, max_size=3).map("".join),
    ).map("".join),
)


@settings(max_examples=800, deadline=None)
@given(_NUMBER_TEXTS)
def test_number_candidates_drop_only_starts_where_no_shape_matches(text):
    src = Source(text)
    kept = set(_candidates((src.padded_numeric, _NUMBER_STARTS_NUMERIC), (src.padded_classes, _NUMBER_STARTS)))
    for rx in _OLD_NUMBER_STARTS:
        for m in rx.finditer(src.padded_classes):
            start = m.start()
            if start in kept:
                continue
            assert _NUMBER_FINDER.match(text, start) is None, (text, start)
            # the shapes that start with "(" are tried from the digit after it
            assert not (start and text[start - 1] == "(" and _NUMBER_FINDER.match(text, start - 1)), (text, start)


# --- The one literal pass: Source.occurrences gives what a bytes.find loop gives ---------------


def _find_every(view: bytes, literal: bytes) -> list[int]:
    out, at = [], view.find(literal)
    while at >= 0:
        out.append(at)
        at = view.find(literal, at + 1)
    return out


_NEEDLE_PIECES = sorted({n[:k] for view in _NEEDLES.values() for n in view for k in (1, 2, len(n))})


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.one_of(st.sampled_from(_NEEDLE_PIECES).map(lambda b: b.decode("latin-1")), st.text(max_size=3)),
        max_size=40,
    ).map("".join)
)
def test_one_pass_finds_every_occurrence_of_every_literal(text):
    src = Source(text)
    for view, words in _NEEDLES.items():
        data = src.latin1 if view == "latin1" else src.lower
        for word in words:
            assert src.occurrences(view, word) == _find_every(data, word), (view, word)


def test_a_literal_nobody_registered_is_an_error_not_an_empty_answer():
    # a literal missing from the pass would be found nowhere, and its format never detected
    with pytest.raises(KeyError, match="not registered"):
        Source("a key: AKIA").occurrences("latin1", b"not-a-registered-literal")
    assert Source("no keyword here").occurrences("lower", b"pass") == []
