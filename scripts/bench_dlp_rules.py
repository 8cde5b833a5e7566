"""Secret formats rule by rule: does shadowgate find a value of each format a public rule set covers?

    uv run python scripts/bench_dlp_rules.py GITLEAKS_CHECKOUT          # one line per rule, then totals
    uv run python scripts/bench_dlp_rules.py GITLEAKS_CHECKOUT --missed # only the rules with a miss

gitleaks (MIT) ships its rules as config/gitleaks.toml: one regular expression per secret format
(222 rules at b58d3f102cf3a2c84cb7f923d05c25c9b1aed84b). Most of its rules' test values are made
at random by the rule itself, so the tests in tests/fixtures/dlp_public/ hold few of them; this
script does the same: for each rule it draws strings that the rule's expression matches (random
characters where the expression has a class, the shortest context the expression allows) and
scans each one bare and inside a prompt sentence. A rule counts as covered when shadowgate
reports a secret overlapping the rule's own match in most samples. Nothing of gitleaks is
copied or run; the data stays in the checkout.

Limits: a drawn value is uniformly random, so it never looks like the documentation filler that
shadowgate deliberately skips, and it is as random as a real key; a rule whose expression is
only context (a keyword and an operator with a short value) draws values that are as often a
plain word as a key. Read it as format coverage, not as a recall figure.
"""

from __future__ import annotations

import argparse
import random
import re
import re._constants as sre_constants  # type: ignore[import-not-found]
import re._parser as sre_parse  # type: ignore[import-not-found]
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = 6
_WORD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
_ALNUM = _WORD[:-1]


def _go_to_python(rx: str) -> str:
    """RE2 syntax that Python reads differently: \\z, and a global (?i) that is not first."""
    rx = rx.replace(r"\z", r"\Z")
    if "(?i)" in rx[1:]:
        rx = "(?i)" + rx.replace("(?i)", "")
    return rx


class _Drawer:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def draw(self, parsed) -> str:
        return "".join(self.item(op, av) for op, av in parsed)

    def item(self, op, av) -> str:  # noqa: C901 - one case per node type of the parse tree
        c = sre_constants
        if op is c.LITERAL:
            return chr(av)
        if op is c.NOT_LITERAL:
            return self.rng.choice([ch for ch in _ALNUM if ord(ch) != av])
        if op is c.ANY:
            return "."  # the rules write hooks.slack.com with a bare "."
        if op is c.IN:
            return self.pick(av)
        if op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
            lo, hi, sub = av
            if lo == 0:
                n = 0  # optional context: the shortest form
            else:
                hi = lo + 8 if hi is c.MAXREPEAT else hi
                n = self.rng.randint(lo, hi)
            return "".join(self.draw(sub) for _ in range(n))
        if op is c.SUBPATTERN:
            return self.draw(av[-1])
        if op is c.BRANCH:
            return self.draw(self.rng.choice(av[1]))
        if op is c.ATOMIC_GROUP:
            return self.draw(av)
        if op in (c.AT, c.ASSERT, c.ASSERT_NOT, c.GROUPREF):
            return ""
        if op is c.CATEGORY:
            return self.category(av)
        raise ValueError(f"cannot draw {op}")

    def category(self, cat) -> str:
        c = sre_constants
        if cat is c.CATEGORY_DIGIT:
            return self.rng.choice("0123456789")
        if cat is c.CATEGORY_SPACE:
            return " "
        if cat is c.CATEGORY_WORD:
            return self.rng.choice(_WORD)
        return self.rng.choice(_ALNUM)

    def pick(self, items) -> str:
        c = sre_constants
        chars: list[str] = []
        negate = False
        for op, av in items:
            if op is c.NEGATE:
                negate = True
            elif op is c.LITERAL:
                chars.append(chr(av))
            elif op is c.RANGE:
                chars.extend(chr(x) for x in range(av[0], av[1] + 1) if 32 < x < 127)
            elif op is c.CATEGORY:
                chars.extend(
                    {c.CATEGORY_DIGIT: "0123456789", c.CATEGORY_WORD: _WORD, c.CATEGORY_SPACE: " "}.get(av, _ALNUM)
                )
        if negate:
            chars = [ch for ch in _ALNUM if ch not in chars]
        return self.rng.choice(chars or list(_ALNUM))


def draw_samples(regex: str, rng: random.Random) -> list[str]:
    try:
        with warnings.catch_warnings():  # RE2 classes such as [[:alnum:]] read as nested sets
            warnings.simplefilter("ignore", FutureWarning)
            compiled = re.compile(_go_to_python(regex))
        parsed = sre_parse.parse(_go_to_python(regex))
    except (re.error, ValueError, OverflowError):
        return []
    drawer = _Drawer(rng)
    samples: list[str] = []
    for _ in range(SAMPLES * 20):
        try:
            text = drawer.draw(parsed)
        except (ValueError, IndexError):
            return samples
        if compiled.search(text) and text.strip():
            samples.append(text)
            if len(samples) == SAMPLES:
                break
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("gitleaks", type=Path, help="a git checkout (or bare repository) of gitleaks")
    parser.add_argument("--missed", action="store_true", help="list only the rules with a missed sample")
    parser.add_argument("--addons", type=Path, default=ROOT / "addons")
    args = parser.parse_args()
    sys.path.insert(0, str(args.addons))
    from shadowgate.dlp import Scanner

    scan = Scanner().scan
    git_dir = args.gitleaks if (args.gitleaks / "HEAD").exists() else args.gitleaks / ".git"
    toml = subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", "HEAD:config/gitleaks.toml"], check=True, capture_output=True
    ).stdout
    rules = tomllib.loads(toml.decode("utf-8"))["rules"]
    rng = random.Random(16)
    covered = drawn = 0
    for rule in rules:
        samples = draw_samples(rule.get("regex", ""), rng)
        if not samples:
            print(f"{rule['id']:45} (no sample drawn)")
            continue
        drawn += 1
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            compiled = re.compile(_go_to_python(rule["regex"]))
        found = 0
        missed: list[str] = []
        for text in samples:
            m = compiled.search(text)
            assert m is not None
            span = m.span(1) if m.re.groups and m.group(1) else m.span()
            prefix = "Can you check why this fails? "
            for form, (a, b) in (
                (text, span),
                (f"{prefix}{text} Thanks.", (span[0] + len(prefix), span[1] + len(prefix))),
            ):
                if any(f.kind == "secret" and f.start < b and f.end > a for f in scan(form)):
                    found += 1
                else:
                    missed.append(form)
        ok = found * 2 > len(samples) * 2 * 1  # most samples (over half)
        covered += ok
        if not args.missed or not ok:
            print(f"{rule['id']:45} {found:2}/{2 * len(samples)}" + ("" if ok else f"  e.g. {missed[0][:90]!r}"))
    print(f"\nrules with a drawn sample: {drawn} of {len(rules)}; covered (most samples found): {covered}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
