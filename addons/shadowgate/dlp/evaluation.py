"""Quality measurement on the labelled corpus (tests/fixtures/dlp/): shared by the corpus test and
scripts/bench_dlp.py, and usable with any tool's findings.

Full-value matching: a label counts as found only if one finding covers the WHOLE labelled span
(finding.start <= label.start and finding.end >= label.end), whatever type the tool gave it;
a finding counts as correct only if it covers a whole label. Masking part of a key leaks the
rest, so a partial match is a miss and a false positive at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from .model import TYPES

CORPUS_DIR = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "dlp"  # a checkout only: tests and benchmarks

Span = tuple[int, int, str]  # start, end, type


@dataclass(frozen=True)
class Document:
    id: str
    genre: str
    text: str
    labels: tuple[Span, ...]


def load(name: str, directory: Path = CORPUS_DIR) -> list[Document]:
    """corpus.jsonl (labelled) or clean.jsonl (no labels): one JSON object per line."""
    docs = []
    with open(directory / name, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            labels = tuple((lab["start"], lab["end"], lab["type"]) for lab in row["labels"])
            docs.append(Document(row["id"], row.get("genre", ""), row["text"], labels))
    return docs


@dataclass
class Counts:
    labels: int = 0
    found: int = 0  # labels covered whole by some finding
    findings: int = 0
    correct: int = 0  # findings covering a whole label

    @property
    def recall(self) -> float:
        return self.found / self.labels if self.labels else float("nan")

    @property
    def precision(self) -> float:
        return self.correct / self.findings if self.findings else float("nan")


@dataclass
class Report:
    by_type: dict[str, Counts] = field(default_factory=dict)
    by_kind: dict[str, Counts] = field(default_factory=dict)
    clean_docs: int = 0
    clean_altered: int = 0
    misses: list[tuple[str, Span, str]] = field(default_factory=list)  # doc id, label, labelled text
    false_positives: list[tuple[str, Span, str]] = field(default_factory=list)

    @property
    def clean_altered_share(self) -> float:
        return self.clean_altered / self.clean_docs if self.clean_docs else float("nan")

    def add(self, key: str, kind: str, **deltas: int) -> None:
        for table, k in ((self.by_type, key), (self.by_kind, kind)):
            c = table.setdefault(k, Counts())
            for name, d in deltas.items():
                setattr(c, name, getattr(c, name) + d)


def kind_of(type_: str) -> str:
    return TYPES.get(type_, "other")


def _covers(f: Span, lab: Span) -> bool:
    return f[0] <= lab[0] and f[1] >= lab[1]


def evaluate(
    docs: Sequence[Document],
    clean: Sequence[Document],
    find: Callable[[str], Iterable[Span]],
    finding_kind: Callable[[str], str] = kind_of,
) -> Report:
    """Run find(text) -> [(start, end, type)] on every document and score it."""
    report = Report()
    for doc in docs:
        found = sorted(find(doc.text))
        for lab in doc.labels:
            hit = any(_covers(f, lab) for f in found)
            report.add(lab[2], kind_of(lab[2]), labels=1, found=int(hit))
            if not hit:
                report.misses.append((doc.id, lab, doc.text[lab[0] : lab[1]]))
        for f in found:
            ok = any(_covers(f, lab) for lab in doc.labels)
            report.add(f[2], finding_kind(f[2]), findings=1, correct=int(ok))
            if not ok:
                report.false_positives.append((doc.id, f, doc.text[f[0] : f[1]]))
    for doc in clean:
        found = list(find(doc.text))
        report.clean_docs += 1
        report.clean_altered += bool(found)
        for f in found:
            report.false_positives.append((doc.id, f, doc.text[f[0] : f[1]]))
    return report
