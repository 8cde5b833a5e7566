"""Class 4: calls billed per character, image or second count against a USD budget (red-team F59).

tts-1-hd costs $30 per million characters of input, not per token: its calls were priced $0
(or not at all), so five of 4096 characters ($0.61) passed a $0.01 budget. Such calls are now
priced per unit from addons/shadowgate/storage/unit_prices.yaml, their price reserved when they
are let through (it is known from the request), and a model the file lacks stays unpriced.
"""

from __future__ import annotations

import json

import pytest

from tests.adversarial.calls import post_marked
from tests.adversarial.calls import reached
from tests.adversarial.wire import marker

POLICY = "budgets:\n  - {id: usd, per: user, usd_per_day: 0.01}\n"
SPEECH = "https://api.openai.com/v1/audio/speech"


def test_speech_is_charged_per_character(proxy_with, upstream):
    proxy = proxy_with(POLICY)
    user = "unit-tts-" + marker()[:6]
    body = json.dumps({"model": "tts-1-hd", "input": "x" * 4096, "voice": "alloy"}).encode()
    first, mark = post_marked(proxy, user, body, SPEECH)
    assert first.status_code == 200 and reached(upstream, mark), first.text[:200]
    # Sent at once, before the first row is sealed: its known price is reserved.
    second, mark = post_marked(proxy, user, body, SPEECH)
    assert second.status_code == 429, second.text[:200]
    assert not reached(upstream, mark)
    row, _refused = proxy.rows(f"user_name = '{user}'", expect=2)
    assert (row["billed_unit"], row["billed_units"]) == ("character", 4096)
    assert row["cost_usd"] == pytest.approx(4096 * 30 / 1_000_000)
    assert row["priced_model"] == "tts-1-hd per character (unit_prices.yaml)"


def test_a_model_without_a_unit_price_stays_unpriced(proxy_with, upstream):
    proxy = proxy_with(POLICY)
    user = "unit-unknown-" + marker()[:6]
    body = json.dumps({"model": "tts-shadow-9", "input": "hello", "voice": "alloy"}).encode()
    answer, _ = post_marked(proxy, user, body, SPEECH)
    assert answer.status_code == 200, answer.text[:200]
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert (row["billed_unit"], row["billed_units"]) == ("character", 5)
    assert (row["cost_usd"], row["priced_model"]) == (None, None)
