"""What scanning the URL of every request to an AI host costs (stages/redact.py: url_findings).

    uv run python scripts/bench_url_scan.py

Each line is the CPU µs per request (time.process_time, best of 5 runs) that Identify or Redact
spends deciding whether DLP finds anything in a request's decoded path and query: a repeated URL
is a cache hit, a new one (a conversation id, a hashed asset name) a scan. The policy is
`dlp: {secrets: redact, pii: redact}`. Figures: docs/dlp.md (the URL paragraph).
"""

from __future__ import annotations

import time

from shadowgate.config.policy import DlpPolicy
from shadowgate.stages.redact import url_findings

DLP = DlpPolicy(secrets="redact", pii="redact")
CASES = {
    "repeated /v1/chat/completions (cache hit)": lambda i: "/v1/chat/completions",
    "repeated Azure URL with a query (cache hit)": lambda i: (
        "/openai/deployments/gpt4o/chat/completions?api-version=2024-06-01"
    ),
    "new chat-app URL each time (scan)": lambda i: (
        f"/backend-api/conversation/{i:08x}-1b2c-4d5e-8f90-123456789abc?offset=0&limit=28"
    ),
    "new asset path each time (scan)": lambda i: f"/cdn/assets/app-{i:08x}.js",
}


def main() -> None:
    url_findings("/warm-up", DLP)
    start = 0
    for label, make in CASES.items():
        n = 3000
        best = float("inf")
        for _ in range(5):
            paths = [make(start + i) for i in range(n)]
            start += n
            t0 = time.process_time()
            for path in paths:
                url_findings(path, DLP)
            best = min(best, (time.process_time() - t0) / n * 1e6)
        print(f"{label:48} {best:7.2f} µs per request")


if __name__ == "__main__":
    main()
