"""The opt-in PERSON_NAME detector (shadowgate.dlp.names) on human-written prompts: how often it
reports, a sample of what it reports (to judge its precision by reading), and its speed.

    uv run python scripts/bench_dlp_names.py HH_RLHF_CHECKOUT SELF_INSTRUCT_CHECKOUT [--sample 50]

The prompts are those of scripts/bench_dlp_public.py --prompts (anthropics/hh-rlhf harmless-base
test, yizhongw/self-instruct seed tasks), read from the checkouts. No public set labels person
names in prompts, so precision is judged on a seeded random sample of the findings, printed
with their prompt; recall has no figure (see docs/dlp.md).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "addons"))

from shadowgate.dlp.model import Hits  # noqa: E402
from shadowgate.dlp.model import Source  # noqa: E402
from shadowgate.dlp.names import detect_person_names  # noqa: E402


def _public_bench():
    spec = importlib.util.spec_from_file_location("bench_dlp_public", ROOT / "scripts" / "bench_dlp_public.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def names_in(text: str) -> list[str]:
    hits = Hits()
    detect_person_names(Source(text), hits)
    return [text[f.start : f.end] for f in hits]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("checkouts", nargs="+", type=Path)
    parser.add_argument("--sample", type=int, default=50)
    args = parser.parse_args()
    prompts = list(_public_bench().human_prompts(args.checkouts))
    found = [(source, text, names_in(text)) for source, text in prompts]
    reported = [(s, t, n) for s, t, n in found if n]
    print(f"{len(prompts)} human-written prompts, {len(reported)} with a PERSON_NAME finding")
    clean = [json.loads(line)["text"] for line in (ROOT / "tests/fixtures/dlp/clean.jsonl").open(encoding="utf-8")]
    joined = "\n\n".join(clean)
    best = min(_cpu(lambda: names_in(joined)) for _ in range(7))
    print(f"speed on the in-house clean prompts joined: {len(joined) / 1e6 / best:.1f} MB/s")
    rng = random.Random(16)
    print(f"\nseeded sample of {min(args.sample, len(reported))} prompts with a finding (judge each by reading):")
    for source, text, names in rng.sample(reported, min(args.sample, len(reported))):
        print(f"  {names} | {source}: {text[:110]!r}")
    return 0


def _cpu(fn) -> float:
    t = time.process_time()
    fn()
    return time.process_time() - t


if __name__ == "__main__":
    raise SystemExit(main())
