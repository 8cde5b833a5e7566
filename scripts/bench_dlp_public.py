"""DLP accuracy on public material: other scanners' own true- and false-positive test strings.

    uv run python scripts/bench_dlp_public.py                  # score shadowgate, print the table
    uv run python scripts/bench_dlp_public.py --by-source      # also per source file
    uv run python scripts/bench_dlp_public.py --misses TYPE    # list what was missed / flagged
    uv run python scripts/bench_dlp_public.py --build DIR...   # rebuild the data from checkouts
    uv run python scripts/bench_dlp_public.py --build-heldout DIR  # held-out rows from a trufflehog checkout
    uv run python scripts/bench_dlp_public.py --heldout        # score the held-out rows
    uv run python scripts/bench_dlp_public.py --prompts DIR... # flag rate on human-written prompts

The data, tests/fixtures/dlp_public/public.jsonl, holds test strings that public projects ship in
their own test suites, with attribution (repository, path, commit) on every row; no code of theirs
is copied or run:

* gitleaks/gitleaks (MIT), cmd/generate/config/rules/*.go: each rule's literal `tps` (must be
  found) and `fps` (must not be) strings. Strings the rule generates at random
  (secrets.NewSecret) are skipped; a literal passed to GenerateSampleSecret is written in that
  function's documented form `<id>_api_token = "<value>"`.
* microsoft/presidio (MIT), presidio-analyzer/tests/test_*_recognizer.py: the literal rows of each
  recognizer's parametrized test table (text, expected count, expected spans).

Every string is scored bare and inside a prompt sentence (row "form"). A positive is found when a
finding of its kind (secret / pii) overlaps each expected span (gitleaks rows have no spans: any
finding of the kind); "exact" also needs one finding to cover the whole span. A negative is
flagged when any finding of its kind is reported. Types that shadowgate does not claim are listed
separately and do not count in the claimed totals.

Measured (2026-12-04; both forms together; 1,937 rows = 3,874 scored texts):

    uv run python scripts/bench_dlp_public.py                                   # after
    git archive e3064ce addons | tar -x -C /tmp/before
    uv run python scripts/bench_dlp_public.py --addons /tmp/before/addons       # before

                                       before (e3064ce)   first round (e36a7d7)   second round       third round
    secrets      recall / flagged       73.0 % / 13.1 %    87.0 % / 6.9 %          95.6 % / 7.6 %     95.6 % / 2.2 %
    PII, types claimed before           59.1 % /  4.5 %    88.1 % / 0.4 %          90.2 % / 0.4 %     90.2 % / 0.4 %
    held-out (--heldout), secrets       73.3 % / 20.7 %    75.6 % / 21.0 %         77.1 % / 21.6 %    90.2 % / 29.2 %

From the third round on, the gitleaks negatives that the rule file itself marks as published
real keys (allowlisted by value) or as a key the rule misses are scored on their own lines
(row "note", see _note) instead of as clean text; the second round's 7.6 % counted them.

The held-out rows come from a third project (trufflesecurity/trufflehog, AGPL-3.0, its detectors'
pattern tests), extracted before the second round and never used to pick a fix. They are not
committed: --build-heldout writes them into dist/.

Per-type figures, the sources and the limits: docs/dlp-accuracy.md.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "fixtures" / "dlp_public" / "public.jsonl"
# trufflehog is AGPL-3.0: its strings are not committed here; --build-heldout writes them to the
# ignored dist/ folder of the checkout that measures.
HELDOUT = ROOT / "dist" / "dlp_heldout_trufflehog.jsonl"

# Prompt sentences a string is embedded in ({} is the string); picked by row number.
SENTENCES = (
    "Can you help me debug this? {} Thanks!",
    "Here is the value from the form: {}",
    "Please summarise the following.\n{}\nKeep it short.",
    "why does this fail: {} ?",
)

# presidio entity -> shadowgate type (None: a type shadowgate does not claim)
PRESIDIO_TYPES: dict[str, str | None] = {
    "CREDIT_CARD": "CREDIT_CARD",
    "EMAIL_ADDRESS": "EMAIL",
    "IBAN_CODE": "IBAN",
    "IP_ADDRESS": "IP",
    "MAC_ADDRESS": "MAC_ADDRESS",
    "PHONE_NUMBER": "PHONE",
    "US_SSN": "US_SSN",
    "US_ITIN": "US_ITIN",
    "US_PASSPORT": "US_PASSPORT",
    "UK_NINO": "UK_NINO",
    "ES_NIE": "ES_NIE",
    "ES_NIF": "ES_DNI",
    "IT_FISCAL_CODE": "IT_FISCAL_CODE",
    "DE_TAX_ID": "DE_TAX_ID",
    # added by issue 16 (not claimed before it)
    "KR_RRN": "KR_RRN",
    "FI_PERSONAL_IDENTITY_CODE": "FI_HETU",
    "SE_PERSONNUMMER": "SE_PERSONNUMMER",
    "SG_NRIC_FIN": "SG_NRIC",
    "US_MBI": "US_MBI",
    "IN_GSTIN": "IN_GSTIN",
    "IN_PAN": "IN_PAN",
    "IN_AADHAAR": "IN_AADHAAR",
    "AU_ABN": "AU_ABN",
    "AU_ACN": "AU_ACN",
    "AU_TFN": "AU_TFN",
    "AU_MEDICARE": "AU_MEDICARE",
    "UK_NHS": "UK_NHS",
    "US_NPI": "US_NPI",
    "CA_SIN": "CA_SIN",
    "TR_NATIONAL_ID": "TR_TCKN",
    "PL_PESEL": "PL_PESEL",
    "ZA_ID_NUMBER": "ZA_ID",
    "CRYPTO": "CRYPTO_WALLET",
    "PH_MOBILE_NUMBER": "PHONE",
    "TR_PHONE_NUMBER": "PHONE",
    # added in the third round
    "DE_HEALTH_INSURANCE": "DE_HEALTH_INSURANCE",
    "DE_SOCIAL_SECURITY": "DE_SOCIAL_SECURITY",
    "DE_PASSPORT": "DE_ID_DOCUMENT",
    "DE_ID_CARD": "DE_ID_DOCUMENT",
    "UK_DRIVING_LICENCE": "UK_DRIVING_LICENCE",
    "UK_POSTCODE": "UK_POSTCODE",
    "UK_PASSPORT": "PASSPORT",
    "IN_PASSPORT": "PASSPORT",
    "IN_VOTER": "IN_VOTER",
    "ABA_ROUTING_NUMBER": "US_ABA_ROUTING",
}
# The presidio entities shadowgate claimed before issue 16: their totals are reported apart, so
# the before/after comparison is on the same rows.
CLAIMED_BEFORE = frozenset(
    "CREDIT_CARD EMAIL_ADDRESS IBAN_CODE IP_ADDRESS MAC_ADDRESS PHONE_NUMBER US_SSN US_ITIN US_PASSPORT UK_NINO ES_NIE ES_NIF IT_FISCAL_CODE DE_TAX_ID".split()
)


# --- Building the data from checkouts --------------------------------------------------------
def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(repo), *args], check=True, capture_output=True, text=True).stdout


def _go_literal_elements(src: str, start: int, end: int) -> Iterator[str]:
    """The elements of a Go list between start and end that are string literals only (one, or
    several joined with +); elements with a call, a variable or a format are skipped."""
    i, depth, parts, literal_only = start, 0, [], True
    while i <= end:
        c = src[i] if i < end else ","
        if src.startswith("//", i):
            i = src.find("\n", i)
            continue
        if c == "`":
            j = src.index("`", i + 1)
            parts.append(src[i + 1 : j])
            i = j + 1
            continue
        if c == '"':
            j = i + 1
            while src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            try:
                parts.append(json.loads(src[i : j + 1]))
            except json.JSONDecodeError:
                parts.append(src[i + 1 : j].encode().decode("unicode_escape"))
            i = j + 1
            continue
        if c in "({[":
            depth += 1
            literal_only = False
        elif c in ")}]":
            depth -= 1
        elif c == "," and depth == 0:
            if parts and literal_only:
                yield "".join(parts)
            parts, literal_only = [], True
        elif depth == 0 and not c.isspace() and c != "+":
            literal_only = False
        i += 1


def _block_end(src: str, open_at: int) -> int:
    depth, i = 0, open_at
    while i < len(src):
        c = src[i]
        if c == "`":
            i = src.index("`", i + 1)
        elif c == '"':
            i += 1
            while src[i] != '"':
                i += 2 if src[i] == "\\" else 1
        elif src.startswith("//", i):
            i = src.find("\n", i)
            continue
        elif c in "({":
            depth += 1
        elif c in ")}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return len(src)


_LIST_RX = re.compile(
    r"\b(tps|fps)\s*(?::=|=)\s*(?:\[\]string\s*(\{)|append\(\s*(?:tps|fps)\s*,\s*|utils\.GenerateSampleSecrets?\()"
)


# A gitleaks negative is a string that one rule must not report. Two kinds are not clean text,
# and say so in the rule file itself; they are kept, marked with the reason (row "note"), and
# scored apart from the clean negatives:
# * "allowlisted-value": the string holds a value of 20+ characters that the rule's Allowlists
#   (regexes, stop words) name verbatim: a real-format key that was published (Google API keys of
#   the Firebase Android SDK's samples, a key in yarnpkg/berry issue 6201). The rule skips these
#   values, not their shape; a DLP scanner cannot tell them from a live key without the same list.
# * "marked-false-negative": the rule file's comment on the string says "False Negative" (a real
#   key the rule is known to miss, kept in its fps list).
_LITERAL_RX = re.compile(r'`([^`]*)`|"((?:[^"\\\n]|\\.)*)"|//[^\n]*')  # every literal, and comments to skip


def _allowlisted_values(src: str) -> set[str]:
    values: set[str] = set()
    for m in re.finditer(r"\bAllowlists:\s*\[\]\*config\.Allowlist\s*\{", src):
        end = src.find("\n\t}\n", m.end())  # the end of the rule's struct literal (gofmt: one tab)
        block = src[m.end() : end if end > 0 else len(src)]
        for lit in _LITERAL_RX.finditer(block):
            value = lit.group(1) if lit.group(1) is not None else lit.group(2)
            if value is not None and re.fullmatch(r"[A-Za-z0-9_\-+/=.]{20,}", value):  # a literal value, not a pattern
                values.add(value)
    return values


def _note(src: str, text: str, allowlisted: set[str]) -> str | None:
    if any(v in text for v in allowlisted):
        return "allowlisted-value"
    at = src.find(text if "\n" not in text else text.split("\n", 1)[0])
    if at >= 0:
        line_start = src.rfind("\n", 0, src.rfind("\n", 0, at)) + 1  # the string's line and the one before
        line_end = src.find("\n", at)
        if "false negative" in src[line_start:line_end].lower():
            return "marked-false-negative"
    return None


def build_gitleaks(repo: Path) -> Iterator[dict]:
    for row, src, allowlisted in _gitleaks_rows(repo):
        if row["expect"] == "clean":
            note = _note(src, row["text"].split('_api_token = "', 1)[-1].rstrip('"'), allowlisted)
            if note:
                row["note"] = note
        yield row


def _gitleaks_rows(repo: Path) -> Iterator[tuple[dict, str, set[str]]]:
    commit = _git(repo, "rev-parse", "HEAD").strip()
    folder = "cmd/generate/config/rules/"
    for path in _git(repo, "ls-tree", "-r", "--name-only", "HEAD", folder).split():
        if not path.endswith(".go") or path.endswith("_test.go"):
            continue
        src = _git(repo, "show", f"HEAD:{path}")
        allowlisted = _allowlisted_values(src)
        for m in _LIST_RX.finditer(src):
            kind = m.group(1)
            open_at = m.end() - 1 if src[m.end() - 1] in "({" else src.rfind("(", 0, m.end())
            if src[m.start() : m.end()].rstrip().endswith(("GenerateSampleSecrets(", "GenerateSampleSecret(")):
                open_at = m.end() - 1
            close = _block_end(src, open_at)
            rule = _rule_id_before(src, m.start())
            if not src[open_at - 30 : open_at].endswith(("GenerateSampleSecrets", "GenerateSampleSecret")):
                for text in _go_literal_elements(src, open_at + 1, close):
                    if text.strip():
                        yield _row(text, kind, rule, "gitleaks/gitleaks", path, commit), src, allowlisted
            # literal secrets passed to GenerateSampleSecret(s)("id", "literal")
            for g in re.finditer(
                r'GenerateSampleSecrets?\(\s*"([^"]+)"\s*,\s*(`[^`]*`|"(?:[^"\\]|\\.)*")\s*\)',
                src[open_at - 40 : close + 1],
            ):
                lit = g.group(2)
                value = lit[1:-1] if lit[0] == "`" else json.loads(lit)
                yield (
                    _row(f'{g.group(1)}_api_token = "{value}"', kind, rule, "gitleaks/gitleaks", path, commit),
                    src,
                    allowlisted,
                )


def _rule_id_before(src: str, at: int) -> str:
    ids = re.findall(r'RuleID:\s*"([^"]+)"', src[:at])
    return ids[-1] if ids else "?"


def _row(text: str, kind: str, label: str, repo: str, path: str, commit: str) -> dict:
    positive = kind == "tps"
    return {
        "text": text,
        "kind": "secret",
        "expect": "found" if positive else "clean",
        "type": label,
        "spans": None,
        "source": {"repo": repo, "path": path, "commit": commit},
    }


def build_presidio(repo: Path) -> Iterator[dict]:
    commit = _git(repo, "rev-parse", "HEAD").strip()
    for path in _git(repo, "ls-tree", "-r", "--name-only", "HEAD", "presidio-analyzer/tests/").split():
        if not re.search(r"/test_[a-z_]+_recognizer\.py\Z", path):
            continue
        src = _git(repo, "show", f"HEAD:{path}")
        fixture = re.search(r'def entities\(\)[^:]*:\s*(?:"""[^"]*"""\s*)?return \[\s*"([A-Z_]+)"', src)
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "parametrize" and len(node.args) >= 2
            ):
                continue
            names = [n.strip() for n in node.args[0].value.split(",")] if isinstance(node.args[0], ast.Constant) else []
            if len(names) < 3 or names[1] != "expected_len" or not isinstance(node.args[1], ast.List):
                continue
            span_at = next((i for i, n in enumerate(names) if "position" in n or n.endswith("_res")), None)
            if span_at is None:
                continue
            for elt in node.args[1].elts:
                try:
                    row = ast.literal_eval(elt)
                except ValueError:
                    continue
                text, count, spans = row[0], row[1], row[span_at]
                entity = (
                    row[names.index("entities")][0]
                    if "entities" in names and row[names.index("entities")]
                    else (fixture.group(1) if fixture else None)
                )
                if (
                    entity is None
                    or not isinstance(text, str)
                    or not isinstance(count, int)
                    or not isinstance(spans, (tuple, list))
                ):
                    continue
                if count and spans and isinstance(spans[0], int):
                    spans = [spans]
                try:
                    spans = [(int(s[0]), int(s[1])) for s in spans] if count else []
                except (TypeError, IndexError, ValueError):
                    continue
                if count and len(spans) != count:
                    continue
                yield _labelled(text, "pii", bool(count), entity, spans, "microsoft/presidio", path, commit)


def _labelled(text: str, kind: str, positive: bool, type_: str, spans: list, repo: str, path: str, commit: str) -> dict:
    return {
        "text": text,
        "kind": kind,
        "expect": "found" if positive else "clean",
        "type": type_,
        "spans": spans or None,
        "source": {"repo": repo, "path": path, "commit": commit},
    }


def build(dirs: list[Path]) -> None:
    rows: list[dict] = []
    for d in dirs:
        git_dir = d if (d / "HEAD").exists() else d / ".git"
        head = _git(git_dir, "ls-tree", "--name-only", "HEAD")
        if "presidio-analyzer" in head:
            rows.extend(build_presidio(git_dir))
        elif "cmd" in head and "go.mod" in head:
            rows.extend(build_gitleaks(git_dir))
    seen: set[tuple[str, str, str]] = set()
    DATA.parent.mkdir(parents=True, exist_ok=True)
    with DATA.open("w", encoding="utf-8") as f:
        for r in rows:
            key = (r["text"], r["expect"], r["type"])
            if key in seen:
                continue
            seen.add(key)
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {len(seen)} rows to {DATA.relative_to(ROOT)}")


# --- The held-out source: trufflehog's detector tests --------------------------------------
# Built apart (HELDOUT) and never used while tuning: it checks that fixes made on public.jsonl
# generalise to a third project's strings.
_GO_STRING = r'`[^`]*`|"(?:[^"\\\n]|\\.)*"'
_GO_DECL_RX = re.compile(
    r"(?m)^\s*(?:var\s+|const\s+)?([A-Za-z_]\w*)\s*(?:string\s*)?=\s*(" + _GO_STRING + r")[ \t]*(?://.*)?$"
)
_GO_ARG_RX = re.compile(r"\s*(?:(" + _GO_STRING + r")|([A-Za-z_]\w*))\s*(,|\))")


def _go_string(lit: str) -> str:
    return lit[1:-1] if lit[0] == "`" else json.loads(lit.replace("\\'", "'"))


def _go_value(src: str, at: int, env: dict[str, str]) -> tuple[str | None, int]:
    """The string that the Go expression at src[at:] evaluates to, if it is a literal, a known
    variable, or fmt.Sprintf of those with %s verbs; and where the expression ends."""
    m = re.compile(r"\s*(?:(" + _GO_STRING + r")|fmt\.Sprintf\(|([A-Za-z_]\w*))").match(src, at)
    if m is None:
        return None, at
    if m.group(1) is not None:
        return _go_string(m.group(1)), m.end()
    if m.group(2) is not None:
        return env.get(m.group(2)), m.end()
    args: list[str | None] = []
    pos = m.end()
    while (a := _GO_ARG_RX.match(src, pos)) is not None:
        args.append(_go_string(a.group(1)) if a.group(1) else env.get(a.group(2) or ""))
        pos = a.end()
        if a.group(3) == ")":
            break
    else:
        return None, pos
    if not args or any(x is None for x in args) or re.search(r"%[^s%v]", args[0] or ""):
        return None, pos
    fmt, rest = args[0] or "", iter(args[1:])
    try:
        return re.sub(r"%[sv]", lambda _: next(rest) or "", fmt), pos
    except StopIteration:
        return None, pos


def build_trufflehog(repo: Path) -> Iterator[dict]:
    """Each detector's pattern test table: input and want (the secrets the detector must return;
    an empty want makes the input a negative of that detector)."""
    commit = _git(repo, "rev-parse", "HEAD").strip()
    for path in _git(repo, "ls-tree", "-r", "--name-only", "HEAD", "pkg/detectors/").split():
        if not path.endswith("_test.go") or path.endswith("_integration_test.go"):
            continue
        src = _git(repo, "show", f"HEAD:{path}")
        env = {m.group(1): _go_string(m.group(2)) for m in _GO_DECL_RX.finditer(src)}
        detector = path.split("/")[2]
        for m in re.finditer(r"\binput:", src):
            text, end = _go_value(src, m.end(), env)
            w = re.compile(r",?\s*want:\s*(nil|\[\]string\{)").match(src, end)
            if text is None or w is None or not text.strip():
                continue
            wants: list[str] = []
            if w.group(1) != "nil":
                pos, ok = w.end(), True
                while re.compile(r"\s*\}").match(src, pos) is None:
                    value, pos = _go_value(src, pos, env)
                    if value is None:
                        ok = False
                        break
                    wants.append(value)
                    pos = re.compile(r"\s*,?").match(src, pos).end()  # type: ignore[union-attr]
                if not ok:
                    continue
            spans = []
            for v in wants:  # where each expected secret is in the input, when it is there verbatim
                at = text.find(v)
                if at < 0 or not v:
                    spans = []
                    break
                spans.append((at, at + len(v)))
            yield _labelled(text, "secret", bool(wants), detector, spans, "trufflesecurity/trufflehog", path, commit)


def build_heldout(repo: Path) -> None:
    git_dir = repo if (repo / "HEAD").exists() else repo / ".git"
    rows, seen = [], set()
    for r in build_trufflehog(git_dir):
        key = (r["text"], r["expect"], r["type"])
        if key not in seen:
            seen.add(key)
            rows.append(r)
    HELDOUT.parent.mkdir(parents=True, exist_ok=True)
    with HELDOUT.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} rows to {HELDOUT.relative_to(ROOT)}")


# --- Human-written prompts: the false-positive check on text nobody labelled -----------------
# anthropics/hh-rlhf (MIT) harmless-base/test.jsonl.gz: every human turn of its dialogues;
# yizhongw/self-instruct (Apache-2.0) data/seed_tasks.jsonl: each task's instruction and input.
# Read from the checkouts at scoring time (nothing is committed). Secrets here are false
# positives; personal data is listed for reading (these prompts do hold some, e.g. an e-mail
# address in a sample letter).
def human_prompts(dirs: list[Path]) -> Iterator[tuple[str, str]]:
    import gzip

    for d in dirs:
        git_dir = d if (d / "HEAD").exists() else d / ".git"
        head = _git(git_dir, "ls-tree", "--name-only", "HEAD")
        if "harmless-base" in head:
            raw = subprocess.run(
                ["git", "--git-dir", str(git_dir), "show", "HEAD:harmless-base/test.jsonl.gz"],
                check=True,
                capture_output=True,
            ).stdout
            for line in gzip.decompress(raw).decode("utf-8").splitlines():
                for turn in json.loads(line)["chosen"].split("\n\nHuman: ")[1:]:
                    yield "anthropics/hh-rlhf", turn.split("\n\nAssistant:")[0]
        elif "data" in head:
            for line in _git(git_dir, "show", "HEAD:data/seed_tasks.jsonl").splitlines():
                task = json.loads(line)
                for instance in task["instances"]:
                    yield "yizhongw/self-instruct", (task["instruction"] + "\n" + instance["input"]).strip()


def score_prompts(scan, dirs: list[Path]) -> None:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    shown: list[str] = []
    for source, text in human_prompts(dirs):
        findings = scan(text)
        c = counts[source]
        c[0] += 1
        c[1] += any(f.kind == "secret" for f in findings)
        c[2] += any(f.kind == "pii" for f in findings)
        shown += [f"  {source}: {f.type} {text[f.start : f.end]!r}" for f in findings]
    for source, (n, secrets, pii) in sorted(counts.items()):
        print(f"{source:26} {n:6} prompts  with a secret {_pct(secrets, n)}  with personal data {_pct(pii, n)}")
    print("\n".join(shown))


# --- Scoring ---------------------------------------------------------------------------------
def load_rows(path: Path = DATA) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def claimed_type(row: dict) -> str | None:
    """The shadowgate type a presidio row maps to; secret rows are always claimed."""
    if row["kind"] == "secret":
        return row["type"]
    return PRESIDIO_TYPES.get(row["type"])


def forms(row: dict, n: int) -> Iterator[tuple[str, str, list[tuple[int, int]] | None]]:
    """(form, text, spans) for the bare string and the string inside a sentence."""
    yield "bare", row["text"], [tuple(s) for s in row["spans"]] if row["spans"] else None
    sentence = SENTENCES[n % len(SENTENCES)]
    offset = sentence.index("{}")
    spans = [(a + offset, b + offset) for a, b in row["spans"]] if row["spans"] else None
    yield "sentence", sentence.format(row["text"]), spans


def _type_key(row: dict) -> str:
    """The row's type, with its note when the source marks it as not clean text (see _note)."""
    return row["type"] + (f" [{row['note']}]" if row.get("note") else "")


def score(scan, rows: list[dict]) -> dict[tuple[str, str, str], list[int]]:
    """(kind, type, form) -> [positives, found, exact, negatives, flagged]."""
    table: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for n, row in enumerate(rows):
        for form, text, spans in forms(row, n):
            findings = [f for f in scan(text) if f.kind == row["kind"]]
            cell = table[(row["kind"], _type_key(row), form)]
            if row["expect"] == "clean":
                cell[3] += 1
                cell[4] += bool(findings)
                continue
            cell[0] += 1
            if spans is None:
                cell[1] += bool(findings)
                cell[2] += bool(findings)
                continue
            cell[1] += all(any(f.start < b and f.end > a for f in findings) for a, b in spans)
            cell[2] += all(any(f.start <= a and f.end >= b for f in findings) for a, b in spans)
    return table


def _pct(a: int, b: int) -> str:
    return f"{100 * a / b:5.1f}%" if b else "    -"


def report(table: dict[tuple[str, str, str], list[int]], rows: list[dict]) -> dict[str, tuple[int, int, int, int, int]]:
    claimed = {_type_key(r): claimed_type(r) is not None for r in rows}
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    print(f"{'kind':6} {'type':42} {'form':8} {'pos':>5} {'recall':>7} {'exact':>7} {'neg':>5} {'flagged':>8}")
    for (kind, type_, form), cell in sorted(table.items()):
        if kind == "pii":
            print(
                f"{kind:6} {type_ + ('' if claimed[type_] else ' (unclaimed)'):42} {form:8} {cell[0]:5} {_pct(cell[1], cell[0]):>7} {_pct(cell[2], cell[0]):>7} {cell[3]:5} {_pct(cell[4], cell[3]):>8}"
            )
        note = type_.partition(" [")[2].rstrip("]")
        group = f"{kind} {note}" if note else f"{kind}{'' if claimed[type_] else ' unclaimed'}"
        keys = [f"{group} {form}", f"{group} all"]
        if kind == "pii" and type_ in CLAIMED_BEFORE:
            keys += [f"pii claimed-before {form}", "pii claimed-before all"]
        for key in keys:
            for i in range(5):
                totals[key][i] += cell[i]
    print()
    print(f"{'total':38} {'pos':>6} {'recall':>7} {'exact':>7} {'neg':>6} {'flagged':>8}")
    for key, c in sorted(totals.items()):
        print(f"{key:38} {c[0]:6} {_pct(c[1], c[0]):>7} {_pct(c[2], c[0]):>7} {c[3]:6} {_pct(c[4], c[3]):>8}")
    return {k: tuple(v) for k, v in totals.items()}  # type: ignore[misc]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--build", nargs="+", type=Path, metavar="DIR", help="git checkouts of gitleaks and presidio")
    parser.add_argument(
        "--misses",
        metavar="TYPE",
        help="print missed positives and flagged negatives of a type ('secret' for all secrets)",
    )
    parser.add_argument("--by-source", action="store_true")
    parser.add_argument("--build-heldout", type=Path, metavar="DIR", help="a git checkout of trufflehog")
    parser.add_argument("--heldout", action="store_true", help="score the held-out rows (trufflehog) instead")
    parser.add_argument(
        "--prompts", nargs="+", type=Path, metavar="DIR", help="checkouts of hh-rlhf and self-instruct: flag rate"
    )
    parser.add_argument(
        "--addons",
        type=Path,
        default=ROOT / "addons",
        help="the shadowgate package's parent folder (to measure another version)",
    )
    args = parser.parse_args()
    if args.build:
        build(args.build)
        return 0
    if args.build_heldout:
        build_heldout(args.build_heldout)
        return 0
    sys.path.insert(0, str(args.addons))
    from shadowgate.dlp import Scanner

    scan = Scanner().scan
    if args.prompts:
        score_prompts(scan, args.prompts)
        return 0
    rows = load_rows(HELDOUT if args.heldout else DATA)
    if args.misses:
        for n, row in enumerate(rows):
            if args.misses not in (row["type"], row["kind"]):
                continue
            for form, text, spans in forms(row, n):
                findings = [f for f in scan(text) if f.kind == row["kind"]]
                if row["expect"] == "clean" and findings:
                    print(
                        f"FLAGGED {row['type']} {form}: {text!r} -> {[(f.type, text[f.start : f.end]) for f in findings]}"
                    )
                elif row["expect"] == "found" and (
                    not findings
                    or (spans and not all(any(f.start < b and f.end > a for f in findings) for a, b in spans))
                ):
                    print(
                        f"MISSED {row['type']} {form}: {text!r} -> {[(f.type, text[f.start : f.end]) for f in findings]}"
                    )
        return 0
    table = score(scan, rows)
    report(table, rows)
    if args.by_source:
        by_source: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
        for n, row in enumerate(rows):
            for _form, text, _spans in forms(row, n):
                hit = any(f.kind == row["kind"] for f in scan(text))
                c = by_source[row["source"]["path"]]
                if row["expect"] == "found":
                    c[0] += 1
                    c[1] += hit
                else:
                    c[2] += 1
                    c[3] += hit
        for path, c in sorted(by_source.items()):
            print(f"{path:70} recall {_pct(c[1], c[0])} ({c[0]})  flagged {_pct(c[3], c[2])} ({c[2]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
