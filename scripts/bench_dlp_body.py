"""DLP cost and false findings on whole JSON request bodies (wireformats.bodyscan.BodyScan.json).

    uv run python scripts/bench_dlp_body.py                          # this tree
    git archive ed3e887 addons | tar -x -C /tmp/before
    uv run python scripts/bench_dlp_body.py --addons /tmp/before/addons   # another tree

Four bodies built from the clean prompts of tests/fixtures/dlp/clean.jsonl: an agent request
(40 function tools whose descriptions, property names and enum values are clean text and
identifiers, and a 30-turn history of tool calls with JSON arguments and tool results), a plain
30-message chat, a list of 2,000 records with 10-19 digit integers (ids, timestamps, sizes), and
a tool result that is a 245 KB JSON document of 1,000 rows. Prints the CPU time of one scan
(best of --runs) and the findings counted: false ones (the few in the rows come from the clean
prompts' own digits, the same in every tree).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def clean_texts() -> list[str]:
    lines = (ROOT / "tests/fixtures/dlp/clean.jsonl").read_text().splitlines()
    return [json.loads(line)["text"] for line in lines if line.strip()]


def agent_body(texts: list[str], rng: random.Random) -> dict[str, Any]:
    words = sorted({w.strip(".,:;()`'\"").lower() for t in texts for w in t.split() if w.isalpha() and len(w) > 3})

    def ident() -> str:
        return "_".join(rng.sample(words, 2))

    tools = []
    for _ in range(40):
        properties = {}
        for _ in range(rng.randint(5, 8)):
            prop: dict[str, Any] = {
                "type": rng.choice(["string", "integer", "boolean"]),
                "description": rng.choice(texts)[:300],
            }
            if rng.random() < 0.3:
                prop = {"type": "string", "enum": [ident() for _ in range(rng.randint(3, 8))]}
            properties[ident()] = prop
        tools.append({"type": "function", "function": {"name": ident(), "description": rng.choice(texts),
                      "parameters": {"type": "object", "properties": properties, "required": list(properties)[:2]}}})  # fmt: skip
    messages: list[dict[str, Any]] = [{"role": "system", "content": rng.choice(texts)}]
    for _ in range(30):
        call_id = f"call_{rng.getrandbits(96):024x}"
        arguments = json.dumps({ident(): rng.choice(texts)[:200], ident(): rng.randint(0, 10**6)})
        messages.append({"role": "user", "content": rng.choice(texts)})
        messages.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": ident(), "arguments": arguments}}]})  # fmt: skip
        messages.append({"role": "tool", "tool_call_id": call_id, "content": rng.choice(texts)})
    return {"model": "gpt-4o", "messages": messages, "tools": tools, "stop": ["\n\nUser:", "<|end|>"]}


def chat_body(texts: list[str], rng: random.Random) -> dict[str, Any]:
    messages = [{"role": rng.choice(["user", "assistant"]), "content": rng.choice(texts)} for _ in range(30)]
    return {"model": "gpt-4o", "messages": messages}


def tool_json_body(texts: list[str], rng: random.Random) -> dict[str, Any]:
    rows = [{"id": f"row-{i}", "name": rng.choice(texts)[:40], "tags": ["alpha", "beta", f"t{i % 7}"],
             "note": rng.choice(texts)[:120]} for i in range(1000)]  # fmt: skip
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": "look it up"},
            {"role": "tool", "tool_call_id": "c1", "content": json.dumps(rows)}]}  # fmt: skip


def numbers_body(rng: random.Random) -> dict[str, Any]:
    records = [
        {
            "id": rng.randint(10**17, 10**19 - 1),
            "created_ms": rng.randint(1_600_000_000_000, 1_800_000_000_000),
            "size": rng.randint(10**9, 10**10),
            "count": rng.randint(0, 1000),
        }  # fmt: skip
        for _ in range(2000)
    ]
    return {"model": "gpt-4o", "messages": [{"role": "user", "content": "summarise"}], "metadata_records": records}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--addons", type=Path, default=ROOT / "addons", help="the addons tree to import")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.addons))
    from shadowgate.dlp import Placeholders
    from shadowgate.dlp import Scanner
    from shadowgate.wireformats.bodyscan import BodyScan

    scanner = Scanner()
    rng = random.Random(7)
    texts = clean_texts()
    bodies = {"agent": agent_body(texts, rng), "chat": chat_body(texts, rng), "numbers": numbers_body(rng)}
    bodies["tooljson"] = tool_json_body(texts, rng)
    for name, body in bodies.items():
        size = len(json.dumps(body))
        best, counts = float("inf"), None
        for _ in range(args.runs):
            scan = BodyScan(scanner.scan, lambda _: "redact", Placeholders().placeholder, time.thread_time() + 60)
            start = time.thread_time()
            scan.json(body)
            best = min(best, time.thread_time() - start)
            counts = scan.counts
        print(f"{name:8} {size / 1024:7.1f} KB  {best * 1000:7.2f} ms  findings {dict(counts or {})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
