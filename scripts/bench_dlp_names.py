"""The opt-in PERSON_NAME detector (shadowgate.dlp.names): recall and precision on labelled public
sentences, how often it reports on clean prompts, a sample on human prompts, and its speed.

    uv run python scripts/bench_dlp_names.py                        # labelled set + clean prompts
    uv run python scripts/bench_dlp_names.py --prompts HH_RLHF_CHECKOUT SELF_INSTRUCT_CHECKOUT [--sample 50]
    uv run python scripts/bench_dlp_names.py --build PRESIDIO_RESEARCH_GIT_DIR   # rebuild the labelled set

The labelled set, tests/fixtures/dlp_public/person_names.jsonl, is derived from
microsoft/presidio-research (MIT), data/synth_dataset_v2.json: 1,500 sentences written from
templates by presidio's data generator with Faker names of many locales, each with its labelled
entity spans. Kept per row: the text, its PERSON spans, the source, path and commit. Nobody here
wrote it, and it was not used to tune the detector.

Scoring (on the scanner a policy gets with `dlp: {types: {PERSON_NAME: redact}}`, PERSON_NAME
findings only): a PERSON span is found when a finding overlaps it, exactly when one finding
covers all of it; a finding is correct when it overlaps a PERSON span; a row without a PERSON
span is flagged when it gets any finding. Spans of two or more capitalised words ("Jane Smith",
"Faina D. Yefremova") are the shape the detector claims and are also counted on their own; a
single name ("Siiri", "Magnusson") it does not look for.

The human prompts (--prompts: anthropics/hh-rlhf harmless-base test, yizhongw/self-instruct seed
tasks, as in scripts/bench_dlp_public.py) carry no labels: a seeded sample of what is reported is
printed, to judge by reading.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "addons"))

from shadowgate.dlp import Scanner  # noqa: E402

LABELLED = ROOT / "tests/fixtures/dlp_public/person_names.jsonl"
PRESIDIO_PATH = "data/synth_dataset_v2.json"
_CLAIMED_SHAPE = re.compile(r"[A-Z][^\s]*(?:\s+[A-Z][^\s]*)+")

SCANNER = Scanner().including({"PERSON_NAME"})


def names_in(text: str) -> list[tuple[int, int]]:
    return [(f.start, f.end) for f in SCANNER.scan(text) if f.type == "PERSON_NAME"]


def build(git_dir: Path) -> int:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(git_dir), *args], check=True, capture_output=True, text=True).stdout

    commit = git("rev-parse", "HEAD").strip()
    rows = json.loads(git("show", f"HEAD:{PRESIDIO_PATH}"))
    with LABELLED.open("w", encoding="utf-8") as out:
        for i, row in enumerate(rows):
            person = sorted(
                [s["start_position"], s["end_position"]] for s in row["spans"] if s["entity_type"] == "PERSON"
            )
            out.write(
                json.dumps(
                    {
                        "text": row["full_text"],
                        "person": person,
                        "repo": "microsoft/presidio-research",
                        "path": PRESIDIO_PATH,
                        "commit": commit,
                        "row": i,
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    print(f"wrote {len(rows)} rows from microsoft/presidio-research@{commit} to {LABELLED.relative_to(ROOT)}")
    return 0


def score_labelled() -> dict[str, float]:
    rows = [json.loads(line) for line in LABELLED.open(encoding="utf-8")]
    spans = found = exact = claimed = claimed_found = findings = correct = negatives = flagged = 0
    for row in rows:
        text, person = row["text"], row["person"]
        got = names_in(text)
        findings += len(got)
        correct += sum(any(s < pe and ps < e for ps, pe in person) for s, e in got)
        if not person:
            negatives += 1
            flagged += bool(got)
        for ps, pe in person:
            hit = any(s < pe and ps < e for s, e in got)
            spans += 1
            found += hit
            exact += any(s <= ps and pe <= e for s, e in got)
            if _CLAIMED_SHAPE.fullmatch(text[ps:pe]):
                claimed += 1
                claimed_found += hit
    source = f"{rows[0]['repo']}@{rows[0]['commit'][:12]} {rows[0]['path']}"
    print(f"labelled sentences: {len(rows)} rows of {source}")
    print(
        f"  PERSON spans found          {found}/{spans} = {100 * found / spans:.1f} % (exact {100 * exact / spans:.1f} %)"
    )
    print(
        f"  of them first+last shaped   {claimed_found}/{claimed} = {100 * claimed_found / claimed:.1f} %"
        " (the shape the detector claims)"
    )
    print(
        f"  precision                   {correct}/{findings} = {100 * correct / findings:.1f} % of findings are a PERSON"
    )
    print(f"  rows without a PERSON       {flagged}/{negatives} = {100 * flagged / negatives:.1f} % flagged")
    return {"recall": found / spans, "precision": correct / findings, "flagged": flagged / negatives}


def score_clean() -> None:
    clean = [json.loads(line)["text"] for line in (ROOT / "tests/fixtures/dlp/clean.jsonl").open(encoding="utf-8")]
    reported = [(t, names_in(t)) for t in clean]
    reported = [(t, n) for t, n in reported if n]
    print(
        f"\nin-house clean prompts: {len(reported)}/{len(clean)} = {100 * len(reported) / len(clean):.1f} % get a PERSON_NAME"
    )
    for text, spans in reported:
        print(f"  {[text[s:e] for s, e in spans]} | {text[:90]!r}")
    joined = "\n\n".join(clean)
    scanner = Scanner()
    plain = min(_cpu(lambda: scanner.scan(joined)) for _ in range(7))
    opted = min(_cpu(lambda: SCANNER.scan(joined)) for _ in range(7))
    mb = len(joined.encode("utf-8")) / 1e6
    print(
        f"speed on them joined: {mb / plain:.1f} MB/s without names, {mb / opted:.1f} MB/s with (CPU time, best of 7)"
    )


def _public_bench():
    spec = importlib.util.spec_from_file_location("bench_dlp_public", ROOT / "scripts" / "bench_dlp_public.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sample_prompts(checkouts: list[Path], sample: int) -> None:
    prompts = list(_public_bench().human_prompts(checkouts))
    found = [(source, text, [text[s:e] for s, e in names_in(text)]) for source, text in prompts]
    reported = [(s, t, n) for s, t, n in found if n]
    print(f"\n{len(prompts)} human-written prompts, {len(reported)} with a PERSON_NAME finding")
    rng = random.Random(16)
    print(f"seeded sample of {min(sample, len(reported))} prompts with a finding (judge each by reading):")
    for source, text, names in rng.sample(reported, min(sample, len(reported))):
        print(f"  {names} | {source}: {text[:110]!r}")


def _cpu(fn) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--build", type=Path, metavar="PRESIDIO_RESEARCH_GIT_DIR")
    parser.add_argument("--prompts", nargs="+", type=Path, default=[], metavar="CHECKOUT")
    parser.add_argument("--sample", type=int, default=50)
    args = parser.parse_args()
    if args.build:
        return build(args.build)
    score_labelled()
    score_clean()
    if args.prompts:
        sample_prompts(args.prompts, args.sample)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
