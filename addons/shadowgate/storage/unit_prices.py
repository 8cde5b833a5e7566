"""Prices per unit other than tokens (red-team F59): characters of speech, seconds of audio or
video, images. The prices are data, unit_prices.yaml beside this module, read once at import.

A call billed so carries its quantity in its request facts (or, for audio, its answer), as
`billed_unit` ("character", "audio_second", "video_second", "image:<size>:<quality>") and
`billed_units`; the row keeps both, and its cost is quantity x price (storage/pricing.py). A
model the file does not list stays unpriced (cost NULL), as an unknown token-priced model does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

UNIT_PRICES_FILE = Path(__file__).with_name("unit_prices.yaml")


@dataclass(frozen=True, slots=True)
class UnitPrice:
    unit: str  # character, audio_second, video_second, image
    usd: float | None  # per unit; None for images, priced per variant
    variants: tuple[tuple[str, str, float], ...] = ()  # images: (size, quality, usd), "*" any


class UnitPrices:
    def __init__(self, models: dict[tuple[str, str], UnitPrice]) -> None:
        self.models = models

    def price(self, provider: str | None, model: str | None) -> UnitPrice | None:
        if not provider or not model:
            return None
        return self.models.get((provider, model.lower()))

    def cost(
        self, provider: str | None, model: str | None, billed_unit: str | None, units: float | None
    ) -> float | None:
        """USD for `units` of `billed_unit` of this model, None when it is not priced so."""
        price = self.price(provider, model)
        if price is None or billed_unit is None or units is None or units < 0:
            return None
        unit, _, variant = billed_unit.partition(":")
        if unit != price.unit:
            return None
        if price.usd is not None:
            return round(units * price.usd, 10)
        size, _, quality = variant.partition(":")
        for want_size, want_quality, usd in price.variants:
            if want_size in ("*", size) and want_quality in ("*", quality):
                return round(units * usd, 10)
        return None


def load_unit_prices(path: Path = UNIT_PRICES_FILE) -> UnitPrices:
    data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    models: dict[tuple[str, str], UnitPrice] = {}
    for provider, entries in data["models"].items():
        for model, entry in entries.items():
            usd = entry["usd"]
            if isinstance(usd, dict):
                variants = []
                for key, value in usd.items():
                    size, _, quality = str(key).partition(":")
                    variants.append((size, quality or "*", float(value)))
                models[(provider, model.lower())] = UnitPrice(entry["unit"], None, tuple(variants))
            else:
                models[(provider, model.lower())] = UnitPrice(entry["unit"], float(usd))
    return UnitPrices(models)


UNIT_PRICES = load_unit_prices()
