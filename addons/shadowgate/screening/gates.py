"""Literal gates: run a pattern only near the words it must start with.

Python's regex engine tries every alternative at every position, which made the phrase patterns
scan at about 1 MB/s. Each pattern branch starts with a group of alternatives (the verb or noun
it is anchored on); the literal prefix of each alternative is a gate. A gated branch is searched
only in a window from each gate occurrence (str.find runs at memory speed), so text without the
gate words costs a few substring searches. A branch whose alternatives have no literal prefix of
two or more characters is searched over the whole text. Correctness: every match of a branch starts
with one of its gate literals, so a window starting at each occurrence sees every match no longer
than WINDOW characters (the patterns' gaps are bounded well below that).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

WINDOW = 800
# Literals too common to gate on: a branch starting with one is searched over the whole text once.
_WEAK = frozenset(
    "the you ai no all if can use write end list what will should new its any your an a to of in is are "
    "be do dont don not never when before instead note if".split()
)
_STOP = set("\\[(.+|^$")
_OPTIONAL = set("?*{")


def _structure(source: str) -> Iterator[tuple[int, str, int]]:
    """(index, character, group depth before it) for each character outside escapes and classes."""
    depth, i, in_class = 0, 0, False
    while i < len(source):
        c = source[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        else:
            yield i, c, depth
            depth += (c == "(") - (c == ")")
        i += 1


def _split_top(source: str) -> list[str]:
    """A regex source split at its top-level '|'."""
    cuts = [i for i, c, depth in _structure(source) if c == "|" and depth == 0]
    bounds = [-1, *cuts, len(source)]
    return [source[bounds[k] + 1 : bounds[k + 1]] for k in range(len(bounds) - 1)]


def _literal_prefix(source: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(source):
        c = source[i]
        if c == "\\":
            nxt = source[i + 1 : i + 2]
            if nxt and not nxt.isalnum():
                out.append(nxt)
                i += 2
                continue
            break
        if c in _OPTIONAL:
            if out:
                out.pop()
            break
        if c in _STOP:
            if c == "+":
                pass
            break
        out.append(c)
        i += 1
    return "".join(out)


# Words too common even to require somewhere in the text (a branch requiring them is never skipped).
_TOO_COMMON = frozenset("the you and all any are can not for".split())


def _selective(literal: str) -> bool:
    """Rare enough to gate on: three ASCII characters, or two of another script (CJK words)."""
    return len(literal) >= (3 if literal.isascii() else 2) and literal.strip() not in _WEAK


def _top_literal_runs(branch: str) -> list[str]:
    """The literal runs outside any group, class or quantifier (each must occur in a match)."""
    runs: list[str] = []
    current: list[str] = []
    depth, i = 0, 0
    while i < len(branch):
        c = branch[i]
        if depth == 0 and c == "\\" and i + 1 < len(branch) and not branch[i + 1].isalnum():
            current.append(branch[i + 1])
            i += 2
            continue
        if depth == 0 and c not in "\\[](){}?*+|.^$":
            current.append(c)
            i += 1
            continue
        if c in "?*{" and current:
            current.pop()  # the character before a quantifier is optional
        runs.append("".join(current))
        current = []
        if c == "\\":
            i += 2
            continue
        if c in "[{":
            close = branch.find("]" if c == "[" else "}", i + 2 if c == "[" else i + 1)
            i = close + 1 if close > 0 else len(branch)
            continue
        depth += (c == "(") - (c == ")")
        i += 1
    runs.append("".join(current))
    return [r for r in runs if _selective(r)]


def _strip_lead(source: str) -> str:
    for lead in (r"\b", r"(?<!\w)"):
        if source.startswith(lead):
            return source[len(lead) :]
    return source


def _group_end(source: str) -> int:
    """Index of the parenthesis closing the group that opens the source (-1 if none)."""
    return next((i for i, c, depth in _structure(source) if c == ")" and depth == 1), -1)


def gates_of(branch: str) -> tuple[str, ...] | None:
    """The literals every match of one branch starts with, or None if it has no usable ones."""
    body = _strip_lead(branch)
    if body.startswith("(?:"):
        end = _group_end(body)
        if end < 0 or body[end + 1 : end + 2] in ("?", "*", "{"):
            return None
        alternatives = _split_top(body[3:end])
    else:
        alternatives = [body]
    literals = []
    for alternative in alternatives:
        literal = _literal_prefix(alternative)
        if not _selective(literal):
            return None
        literals.append(literal)
    return tuple(sorted(set(literals)))


def required_literals(branch: str) -> tuple[str, ...] | None:
    """Literals one of which every match of a branch contains somewhere, or None.

    Found in a mandatory top-level group (not followed by ?, * or {0) whose alternatives all
    start with a literal of three or more characters that is not one of the commonest words, or
    in a literal run outside any group.
    """
    best: tuple[str, ...] | None = None
    for i, c, depth in _structure(branch):
        if c != "(" or depth != 0 or not branch.startswith("(?:", i):
            continue
        end = i + _group_end(branch[i:])
        if end < i or branch[end + 1 : end + 2] in ("?", "*") or branch.startswith("{0", end + 1):
            continue
        literals = [_literal_prefix(alt) for alt in _split_top(branch[i + 3 : end])]
        if all(len(lit) >= 3 and lit.strip() not in _TOO_COMMON for lit in literals):
            if best is None or len(literals) < len(best):
                best = tuple(sorted(set(literals)))
    runs = _top_literal_runs(branch)
    if runs:
        return (max(runs, key=len),)
    return best


class GatedPattern:
    """One detector's patterns, each branch searched only near its gate literals."""

    def __init__(self, sources: list[str]) -> None:
        self.gated: list[tuple[tuple[str, ...], re.Pattern[str]]] = []
        # branches with no leading gate but a literal they must contain: searched whole when present
        self.required: list[tuple[tuple[str, ...], re.Pattern[str]]] = []
        ungated = []
        for source in sources:
            for branch in _split_top(source):
                gates = gates_of(branch)
                if gates is None:
                    required = required_literals(branch)
                    if required is None:
                        ungated.append(branch)
                    else:
                        self.required.append((required, re.compile(branch, re.MULTILINE)))
                else:
                    self.gated.append((gates, re.compile(branch, re.MULTILINE)))
        self.ungated = re.compile("|".join(f"(?:{b})" for b in ungated), re.MULTILINE) if ungated else None

    def search(self, text: str) -> bool:
        if self.ungated is not None and self.ungated.search(text):
            return True
        for literals, pattern in self.required:
            if any(lit in text for lit in literals) and pattern.search(text):
                return True
        for gates, pattern in self.gated:
            for gate in gates:
                pos = text.find(gate)
                while pos >= 0:
                    # \b and (?<!\w) look one character back: start the search there.
                    if pattern.search(text, max(0, pos - 1), pos + WINDOW):
                        return True
                    pos = text.find(gate, pos + 1)
        return False


def _occurrences(text: str, literal: str, budget: int) -> list[int] | None:
    """Where literal occurs, or None when it occurs more than budget times."""
    spots: list[int] = []
    pos = text.find(literal)
    while pos >= 0:
        if len(spots) == budget:
            return None
        spots.append(pos)
        pos = text.find(literal, pos + 1)
    return spots


def _search_near(text: str, literals: tuple[str, ...], pattern: re.Pattern[str]) -> bool:
    """Search a branch that must contain one of `literals`: around each occurrence when they are
    few (every match is shorter than WINDOW, so it lies within WINDOW of its literal), else whole."""
    budget = len(text) // (2 * WINDOW) + 1
    spots: list[int] = []
    for literal in literals:
        found = _occurrences(text, literal, budget - len(spots))
        if found is None:
            return pattern.search(text) is not None
        spots.extend(found)
    return any(pattern.search(text, max(0, pos - WINDOW), pos + WINDOW) for pos in spots)


class GateSet:
    """Several detectors' patterns behind one scan for all their gate literals.

    Each gate is found with str.find (memory speed; a regex alternation of hundreds of literals
    ran at about 1.5 MB/s), and the branches registered under it are searched from each
    occurrence. Gates that extend a shorter gate are folded into it (the shorter one's occurrence
    covers theirs), so every branch is tried wherever one of its matches could start.
    """

    def __init__(self, detectors: dict[str, list[str]]) -> None:
        self.ungated: dict[str, re.Pattern[str]] = {}
        self.required: list[tuple[str, tuple[str, ...], re.Pattern[str]]] = []
        branches: list[tuple[str, tuple[str, ...], re.Pattern[str]]] = []
        for name, sources in detectors.items():
            gp = GatedPattern(sources)
            if gp.ungated is not None:
                self.ungated[name] = gp.ungated
            self.required.extend((name, literals, pattern) for literals, pattern in gp.required)
            branches.extend((name, gates, pattern) for gates, pattern in gp.gated)
        every = {g for _, gates, _ in branches for g in gates}
        minimal = sorted(g for g in every if not any(o != g and g.startswith(o) for o in every))
        self.by_gate: dict[str, list[tuple[str, re.Pattern[str]]]] = {g: [] for g in minimal}
        for name, gates, pattern in branches:
            for gate in minimal:
                if any(g.startswith(gate) for g in gates):
                    self.by_gate[gate].append((name, pattern))

    def scan(self, text: str, names: frozenset[str] | set[str]) -> set[str]:
        """Which of `names` fire on text."""
        fired = {name for name, pattern in self.ungated.items() if name in names and pattern.search(text)}
        for name, literals, pattern in self.required:
            if name in names and name not in fired and _search_near(text, literals, pattern):
                fired.add(name)
        budget = len(text) // WINDOW + 1
        for gate, branches in self.by_gate.items():
            live = [(name, pattern) for name, pattern in branches if name in names and name not in fired]
            if not live:
                continue
            spots = _occurrences(text, gate, budget)
            if spots is None:  # the gate is everywhere ("ignore ignore ..."): one search of the whole text
                fired.update(name for name, pattern in live if pattern.search(text))
                continue
            for pos in spots:
                for name, pattern in live:
                    if name not in fired and pattern.search(text, max(0, pos - 1), pos + WINDOW):
                        fired.add(name)
        return fired
