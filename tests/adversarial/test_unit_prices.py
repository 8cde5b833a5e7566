"""Class 4: calls billed per character, image or second count against a USD budget (red-team F59).

tts-1-hd costs $30 per million characters of input, not per token: its calls were priced $0
(or not at all), so five of 4096 characters ($0.61) passed a $0.01 budget. Such calls are now
priced per unit from addons/shadowgate/storage/unit_prices.yaml, their price reserved when they
are let through (it is known from the request), and a model the file lacks stays unpriced.
"""

from __future__ import annotations

import json

import pytest

from tests.adversarial.calls import fake_answer
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
    # A model whose price is unknown is refused too while its subject is over the budget.
    unpriced = json.dumps({"model": "tts-shadow-9", "input": "hello", "voice": "alloy"}).encode()
    third, mark = post_marked(proxy, user, unpriced, SPEECH)
    assert third.status_code == 429 and not reached(upstream, mark), third.text[:200]
    row, _refused, _unpriced = proxy.rows(f"user_name = '{user}'", expect=3)
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


@pytest.mark.parametrize(
    ("path", "request_body", "answer", "billed", "cost"),
    [
        ("/v1/images/generations", {"model": "dall-e-3", "prompt": "a cat", "size": "1792x1024", "quality": "hd"},
         {"created": 1, "data": [{"url": "https://example.com/a.png"}]}, ("image:1792x1024:hd", 1), 0.12),
        ("/v1/images/generations", {"prompt": "a cat", "n": 3},  # dall-e-2, 1024x1024 unless told
         {"created": 1, "data": [{"url": "https://example.com/a.png"}] * 3}, ("image:1024x1024:*", 3), 0.06),
        ("/v1/videos", {"model": "sora-2", "prompt": "a cat", "seconds": "8"},
         {"id": "video_1", "object": "video", "model": "sora-2", "status": "queued", "seconds": "8"}, ("video_second", 8), 0.8),
    ],
    ids=["dall-e-3-hd", "dall-e-2-default", "sora-2"],
)  # fmt: skip
def test_images_and_video_are_charged_per_unit(proxy_with, upstream, path, request_body, answer, billed, cost):
    proxy = proxy_with(POLICY)
    user = "unit-media-" + marker()[:6]
    case = fake_answer(upstream, path, answer)
    try:
        sent = json.dumps(request_body).encode()
        url = "https://api.openai.com" + path
        first, mark = post_marked(proxy, user, sent, url, headers={"x-fake-case": case})
        assert first.status_code == 200 and reached(upstream, mark), first.text[:200]
        second, mark = post_marked(proxy, user, sent, url, headers={"x-fake-case": case})
        assert second.status_code == 429 and not reached(upstream, mark), second.text[:200]
    finally:
        upstream.cases.pop(case, None)
    row, _refused = proxy.rows(f"user_name = '{user}'", expect=2)
    assert (row["billed_unit"], row["billed_units"]) == billed
    assert row["cost_usd"] == pytest.approx(cost)


def _audio_upload(size: int) -> tuple[bytes, str]:
    body = (
        b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.mp3"\r\nContent-Type: audio/mpeg\r\n\r\n'
        + b"\xff" * size
        + b"\r\n--b--\r\n"
    )
    return body, "multipart/form-data; boundary=b"


@pytest.mark.parametrize(
    ("answer", "seconds", "second_status"),
    [
        ({"text": "a long meeting", "usage": {"type": "duration", "seconds": 600}}, 600, 429),
        ({"text": "a short note"}, 10, 200),  # 40 000 bytes at 4 000 a second; $0.001 of $0.01
    ],
    ids=["duration-in-answer", "estimated-from-bytes"],
)
def test_transcription_is_charged_per_second_of_audio(proxy_with, upstream, answer, seconds, second_status):
    proxy = proxy_with(POLICY)
    user = "unit-audio-" + marker()[:6]
    case = fake_answer(upstream, "/v1/audio/transcriptions", answer)
    url = "https://api.openai.com/v1/audio/transcriptions"
    body, content_type = _audio_upload(40000)
    try:
        first, mark = post_marked(proxy, user, body, url, content_type, headers={"x-fake-case": case})
        assert first.status_code == 200 and reached(upstream, mark), first.text[:200]
        [row] = proxy.rows(f"user_name = '{user}'", expect=1)
        second, _ = post_marked(proxy, user, body, url, content_type, headers={"x-fake-case": case})
        assert second.status_code == second_status, second.text[:200]
    finally:
        upstream.cases.pop(case, None)
    assert (row["model"], row["billed_unit"], row["billed_units"]) == ("whisper-1", "audio_second", seconds)
    assert row["cost_usd"] == pytest.approx(seconds * 0.006 / 60)
