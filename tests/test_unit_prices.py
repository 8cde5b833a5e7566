"""Prices per character, image or second (storage/unit_prices.yaml, red-team F59)."""

from __future__ import annotations

import pytest

from shadowgate.storage.unit_prices import UNIT_PRICES


@pytest.mark.parametrize(
    ("model", "unit", "units", "cost"),
    [
        ("tts-1-hd", "character", 4096, 0.12288),
        ("TTS-1", "character", 1_000_000, 15.0),
        ("whisper-1", "audio_second", 60, 0.006),
        ("dall-e-3", "image:1024x1024:standard", 1, 0.04),
        ("dall-e-3", "image:1792x1024:hd", 2, 0.24),
        ("dall-e-3", "image:512x512:hd", 1, 0.12),  # a size not listed: the dearest
        ("gpt-image-1", "image:1024x1536:low", 1, 0.016),
        ("gpt-image-1", "image:1024x1024:*", 1, 0.167),  # quality left out (auto): high
        ("sora-2", "video_second", 8, 0.8),
    ],
)
def test_unit_prices(model, unit, units, cost):
    assert UNIT_PRICES.cost("openai", model, unit, units) == pytest.approx(cost)


@pytest.mark.parametrize(
    ("provider", "model", "unit"),
    [
        ("openai", "tts-1", "image:1024x1024:*"),  # another unit than the model's
        ("openai", "gpt-4o", "character"),  # priced by tokens
        ("azure", "tts-1", "character"),  # another provider's rates are not OpenAI's
        (None, "tts-1", "character"),
    ],
)
def test_what_is_not_priced_per_unit(provider, model, unit):
    assert UNIT_PRICES.cost(provider, model, unit, 10) is None


def test_every_image_model_prices_any_size():
    for price in UNIT_PRICES.models.values():
        if price.unit == "image":
            assert ("*", "*") in {(size, quality) for size, quality, _ in price.variants}
