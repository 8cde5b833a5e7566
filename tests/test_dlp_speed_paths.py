"""The shortcuts the scanner takes for speed give the same answers as the plain way."""

from __future__ import annotations

import bisect

from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from shadowgate.dlp.model import Finding
from shadowgate.dlp.scanner import _GENERIC_TYPES
from shadowgate.dlp.scanner import resolve_overlaps


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
