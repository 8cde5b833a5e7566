"""An OpenAI Evals run spends like a batch (red-team F96).

`POST /v1/evals/{id}/runs` runs its data source's model over every item of the source (2000
items x 32 000 tokens of o3 is 64 M tokens) and was charged as one ordinary call: it passed a
100 000-token budget that refuses the same requests as a batch file. It is now bounded as a batch:
items times the sampling cap, charged whole; an uncapped run, or one whose items are in a file,
has no bound and is refused under a token budget.
"""

from __future__ import annotations

import json

import pytest

from tests.adversarial.calls import post_marked
from tests.adversarial.calls import reached

BUDGET = "budgets:\n  - {id: daily, per: user, tokens_per_day: 100000}\n"
URL = "https://api.openai.com/v1/evals/eval_1/runs"


def _run(items: int, cap: int | None = 32000, source: dict | None = None) -> bytes:
    sampling = {"max_completions_tokens": cap} if cap is not None else {}
    content = [{"item": {"q": f"question {i}"}} for i in range(items)]
    return json.dumps({"name": "r", "data_source": {
        "type": "completions", "model": "o3", "sampling_params": sampling,
        "input_messages": {"type": "template", "template": [{"role": "user", "content": "{{item.q}}"}]},
        "source": source or {"type": "file_content", "content": content}}}).encode()  # fmt: skip


@pytest.fixture(scope="module")
def gate(module_proxy_with):
    return module_proxy_with(BUDGET + "rules:\n  - {id: no-o3, match: {model: 'o3-pro*'}, action: block}\n")


@pytest.mark.parametrize(
    ("user", "body", "why"),
    [
        ("eval-big", _run(2000), "may use"),
        ("eval-uncapped", _run(10, cap=None), "no output cap"),
        ("eval-file", _run(0, source={"type": "file_id", "id": "file-abc"}), "file_id source"),
    ],
    ids=["over-the-budget", "uncapped", "items-in-a-file"],
)
def test_an_eval_run_the_budget_cannot_hold_is_refused(gate, upstream, user, body, why):
    answer, mark = post_marked(gate, user, body, URL)
    assert answer.status_code == 429 and not reached(upstream, mark), answer.text[:200]
    [row] = gate.rows(f"user_name = '{user}'", expect=1)
    assert (row["rule_id"], row["operation"], row["model"]) == ("daily", "create_batch", "o3")
    assert why in answer.text


def test_an_azure_eval_run_is_bounded_too(gate, upstream):
    url = "https://acme-eastus.openai.azure.com/openai/v1/evals/eval_1/runs?api-version=preview"
    answer, mark = post_marked(gate, "eval-azure", _run(2000), url, headers={"api-key": "k"})
    assert answer.status_code == 429 and not reached(upstream, mark), answer.text[:200]


def test_a_small_capped_eval_run_passes(gate, upstream):
    answer, mark = post_marked(gate, "eval-small", _run(5, cap=1000), URL)
    assert reached(upstream, mark), answer.text[:200]
    [row] = gate.rows("user_name = 'eval-small'", expect=1)
    assert (row["decision"], row["operation"]) == ("allow", "create_batch")
