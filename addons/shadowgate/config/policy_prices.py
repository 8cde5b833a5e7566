"""The policy's `prices:` section: negotiated rates per provider and model, over the list prices.

    prices:
      - provider: openai              # a catalog provider id (checked against the catalog)
        model: "gpt-4o*"              # a glob on the model name; absent: every model
        input_per_mtok: 2.00          # USD per million input tokens
        output_per_mtok: 8.00         # USD per million output tokens (reasoning included)
        cached_input_per_mtok: 1.00   # optional, default: input_per_mtok
        cache_write_per_mtok: 2.50    # optional, default: input_per_mtok
      - provider: anthropic
        discount: 0.15                # or: 15 % off the list price, every model

The first entry matching a call's provider and model (the served model, else the requested one)
prices it. A row's `cost_usd` is fixed when it is written, so budgets and reports see the
negotiated cost of every call made while the entry is in force; rows written earlier keep theirs.
Rates price a model the list does not know (a company deployment); a discount needs a list price.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shadowgate.config.yamlfile import ConfigError
from shadowgate.config.yamlfile import line_of
from shadowgate.config.yamlfile import line_of_key

MILLION = 1_000_000
_RATE_KEYS = ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "cache_write_per_mtok")
_KEYS = {"provider", "model", "discount", *_RATE_KEYS}


@dataclass(frozen=True, slots=True)
class PriceOverride:
    line: int
    provider: str
    model: str  # glob
    input: float | None = None  # USD per token; None with a discount
    output: float | None = None
    cached_input: float | None = None
    cache_write: float | None = None
    discount: float | None = None  # fraction off the list price

    @property
    def label(self) -> str:
        """What priced_model records for a row this entry priced."""
        return f"prices:{self.provider}/{self.model}"

    def matches(self, provider: str | None, model: str) -> bool:
        return provider == self.provider and fnmatch.fnmatchcase(model, self.model)

    def cost(self, input_tokens: int, output_tokens: int, cached: int, written: int) -> float | None:
        """The cost at these rates, counted as genai-prices counts (cached and cache-written tokens
        are part of input_tokens); None for a discount entry, which needs the list price."""
        if self.input is None or self.output is None:
            return None
        uncached = max(input_tokens - cached - written, 0)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        write_rate = self.input if self.cache_write is None else self.cache_write
        cost = uncached * self.input + cached * cached_rate + written * write_rate + output_tokens * self.output
        return round(cost, 10)


def price_override(prices: Sequence[PriceOverride], provider: str | None, *models: str | None) -> PriceOverride | None:
    """The first entry for this provider and the first of `models` that one matches."""
    for model in models:
        if model:
            for entry in prices:
                if entry.matches(provider, model):
                    return entry
    return None


def parse_prices(path: str | Path, raw: Any) -> tuple[PriceOverride, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(path, line_of(raw, 0), "prices must be a list of entries")
    return tuple(_entry(path, item) for item in raw)


def _entry(path: str | Path, raw: Any) -> PriceOverride:
    line = line_of(raw) or 0
    if not isinstance(raw, dict):
        raise ConfigError(path, line, "a prices entry must be a mapping with a provider")
    unknown = sorted(set(map(str, raw)) - _KEYS)
    if unknown:
        raise ConfigError(path, line, f"prices entry: unknown key {unknown[0]!r} (known: {', '.join(sorted(_KEYS))})")
    provider, model = raw.get("provider"), raw.get("model", "*")
    if not isinstance(provider, str) or not provider:
        raise ConfigError(path, line, "prices entry: provider (a catalog provider id) is required")
    if not isinstance(model, str) or not model:
        raise ConfigError(path, line_of_key(raw, "model") or line, "prices entry: model must be a name or a glob")
    what = f"prices entry {provider}/{model}"
    rates = {key: _number(path, raw, key, what) for key in _RATE_KEYS}
    discount = _number(path, raw, "discount", what)
    if discount is not None:
        if any(v is not None for v in rates.values()):
            raise ConfigError(path, line, f"{what}: give a discount or rates, not both")
        if not 0 <= discount < 1:
            raise ConfigError(path, line_of_key(raw, "discount"), f"{what}: discount is a fraction in [0, 1)")
        return PriceOverride(line, provider, model, discount=discount)
    if rates["input_per_mtok"] is None or rates["output_per_mtok"] is None:
        raise ConfigError(path, line, f"{what}: set input_per_mtok and output_per_mtok, or a discount")
    per_token = {key: None if value is None else value / MILLION for key, value in rates.items()}
    return PriceOverride(
        line,
        provider,
        model,
        input=per_token["input_per_mtok"],
        output=per_token["output_per_mtok"],
        cached_input=per_token["cached_input_per_mtok"],
        cache_write=per_token["cache_write_per_mtok"],
    )


def _number(path: str | Path, raw: dict, key: str, what: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(path, line_of_key(raw, key), f"{what}: {key} must be a number >= 0")
    return float(value)
