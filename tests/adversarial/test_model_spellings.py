"""Class 3: a model rule cannot be passed by spelling the model another way (red-team F10).

Upstreams and routers read model names loosely (case-insensitive lookups, trimming, an
OpenRouter-style `vendor/` prefix). A `gpt-4o*` block compared raw let `GPT-4o`, `" gpt-4o"`,
`gpt‑4o` (U+2011), fullwidth `ｇｐｔ-4o` and `openai/gpt-4o` through. Each form the model may be
read as is judged, and the strictest decision holds.
"""

from __future__ import annotations

import json

import pytest

from tests.adversarial.calls import post_marked
from tests.adversarial.calls import reached

BLOCK_GPT4O = "rules:\n  - {id: no-gpt4o, match: {model: 'gpt-4o*'}, action: block}\n"
SPELLINGS = {
    "upper": "GPT-4o",
    "space": " gpt-4o",
    "nb-hyphen": "gpt\u20114o",
    "en-dash": "gpt\u20134o-mini",
    "fullwidth": "\uff47\uff50\uff54-4o",
    "vendor": "openai/gpt-4o",
    "vendor-upper": "OpenAI/GPT-4o-mini",
    "zero-width": "gpt-\u200b4o",
}


def _chat(proxy, user: str, model: str):
    return post_marked(
        proxy, user, json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]}).encode()
    )


@pytest.mark.parametrize("model", list(SPELLINGS.values()), ids=list(SPELLINGS))
def test_a_blocked_model_in_another_spelling_is_blocked(proxy_with, upstream, model):
    proxy = proxy_with(BLOCK_GPT4O)
    user = f"model-{sorted(SPELLINGS.values()).index(model)}"
    answer, mark = _chat(proxy, user, model)
    assert answer.status_code == 403, answer.text[:200]
    assert "no-gpt4o" in answer.text
    assert not reached(upstream, mark)
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert (row["model"], row["decision"], row["rule_id"]) == (model, "block", "no-gpt4o")


def test_an_earlier_allow_for_the_raw_form_does_not_win(proxy_with, upstream):
    # `openai/*` is allowed as sent, but a router strips the prefix and serves gpt-4o: strictest.
    proxy = proxy_with(
        "rules:\n  - {id: routed, match: {model: 'openai/*'}, action: allow}\n"
        "  - {id: no-gpt4o, match: {model: 'gpt-4o*'}, action: block}\n"
    )
    answer, mark = _chat(proxy, "model-order", "openai/gpt-4o")
    assert answer.status_code == 403, answer.text[:200]
    assert not reached(upstream, mark)
    answer, mark = _chat(proxy, "model-order-ok", "openai/gpt-3.5-turbo")
    assert answer.status_code == 200, answer.text[:200]
    assert reached(upstream, mark)


def test_other_models_still_pass(proxy_with, upstream):
    proxy = proxy_with(BLOCK_GPT4O)
    for model in ("gpt-3.5-turbo", "GPT-3.5-Turbo", "openai/gpt-4.1"):
        answer, mark = _chat(proxy, "model-other", model)
        assert answer.status_code == 200, (model, answer.text[:200])
        assert reached(upstream, mark)
