"""A prompt built to stall the DLP scan (and with it the event loop that scans prompts inline).

A real mitmdump with a DLP policy; OpenAI-shaped chat requests whose one prompt string repeats
what made a detector work at every character: "eyJ" (the JWT pattern was tried at each one and
read to the end of the run: quadratic), "." (the Discord probe fired at every dot), fullwidth
letters and colons. A prompt under 64 KB is scanned on the event loop, so its scan time is in the
row's proxy_overhead_us; before the fixes 60 KB of "eyJ" held the loop for over a second.
"""

from __future__ import annotations

import pytest

from shadowgate.dlp.evaluation import load

# Under SCAN_IN_THREAD_CHARS (64 KB): scanned inline, on the event loop.
_INLINE = 60_000
HOSTILE = {
    # (after a word: a string that is one base64 value is decoded, not scanned as text)
    "jwt_starts": "see " + "eyJ" * (_INLINE // 3),
    "dots": "." * _INLINE,
    "fullwidth": "\uff21" * (_INLINE // 3),  # 3 UTF-8 bytes each: 60 KB of body
    "colons": ":" * _INLINE,
    "zero_width": "a\u200b" * (_INLINE // 4),
}
# The event-loop time a hostile prompt may cost: this many times what clean prompt text of the same
# size costs in the same test (~5 ms here), and never less than _FLOOR_US. Measured here: the
# slowest ~45 ms (zero-width spaces between letters); before the fixes "eyJ" 1.28 s, dots 204 ms,
# colons 138 ms.
_TIMES_CLEAN = 15
_FLOOR_US = 100_000


def _policy(tmp_path, text: str) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return str(path)


def _row(proxy, user: str, content: str) -> dict:
    with proxy.client(user) as client:
        response = client.post(
            "https://api.openai.com/v1/chat/completions",
            headers={"authorization": "Bearer sk-test"},
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]},
            timeout=60,
        )
    assert response.status_code == 200, response.text[:300]
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    return row


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_prompt_built_to_stall_the_scan_costs_the_event_loop_milliseconds(proxy, upstream, tmp_path, name):
    clean_text = " ".join(d.text for d in load("clean.jsonl"))[: len(HOSTILE[name])]
    with proxy.options(shadowgate_policy=_policy(tmp_path, "dlp: {secrets: redact, pii: log}\n")):
        before = len(upstream.seen)
        clean = _row(proxy, f"stall_clean_{name}", clean_text)["proxy_overhead_us"]
        row = _row(proxy, f"stall_{name}", HOSTILE[name])
    assert len(upstream.seen) == before + 2
    assert row["dlp_action"] is None  # scanned (not refused for time), nothing found, sent on
    hostile = row["proxy_overhead_us"]
    assert hostile < max(_FLOOR_US, _TIMES_CLEAN * clean), (hostile, clean)
