"""Cost from genai-prices' bundled price data (offline; we never call its network updater).

The lookup is done once per (provider, model). For the common flat-priced model the result is
reduced to four per-token rates, so pricing a row is four multiplications; models with tiered
prices (e.g. long-context surcharges) go through genai-prices' own calculator every time.
Unknown models cost NULL: a made-up price is worse than none. The policy's `prices:` entries
(negotiated rates or a discount, config/policy_prices.py) come before the list price.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from genai_prices import Usage
from genai_prices import calc_price
from genai_prices.types import ModelPrice
from genai_prices.types import TieredPrices

from shadowgate.config.policy_prices import PriceOverride
from shadowgate.config.policy_prices import price_override
from shadowgate.storage.unit_prices import UNIT_PRICES

if TYPE_CHECKING:
    from shadowgate.config.catalog import Catalog
    from shadowgate.storage.rows import AiRequest

_PROBE = 1_000_000
_CACHE_MAX = 10_000  # (provider, model, service tier) lookups kept


@dataclass(frozen=True, slots=True)
class _FlatRates:
    input: float
    cache_read: float
    cache_write: float
    cache_write_1h: float  # Anthropic's one-hour cache writes, a subset of the writes (round-6b G16)
    output: float


@dataclass(frozen=True, slots=True)
class PriceQuote:
    cost_usd: float
    model_id: str  # the genai-prices model the request's model name resolved to


class Pricing:
    def __init__(self, overrides: Callable[[], Sequence[PriceOverride]] = tuple) -> None:
        self.overrides = overrides  # the price entries in force (the policy's, read at each row)
        self._cache: dict[tuple[str, str, str | None], tuple[ModelPrice, _FlatRates | None, str] | None] = {}
        self._lock = threading.Lock()

    @staticmethod
    def warm() -> None:
        """Load genai-prices' bundled price list now. It is a large Python module: without cached
        bytecode, compiling it took ~0.45 s of CPU, paid by whichever row was priced first."""
        from genai_prices.data_snapshot import get_snapshot

        get_snapshot()

    def quote(
        self,
        provider: str | None,
        model: str | None,
        input_tokens: int | None,
        output_tokens: int | None,
        cached_input_tokens: int | None = None,
        cache_creation_input_tokens: int | None = None,
        cache_write_1h_tokens: int | None = None,
        service_tier: str | None = None,
    ) -> PriceQuote | None:
        """service_tier: the one the answer says served the call (OpenAI's flex, priority), whose
        rates genai-prices lists as price variants; an unknown tier is priced at the standard rates."""
        if not provider or not model or (input_tokens is None and output_tokens is None):
            return None
        entry = self._lookup(provider, model, service_tier or None)
        if entry is None:
            return None
        model_price, flat, model_id = entry
        inp = input_tokens or 0
        cached = cached_input_tokens or 0
        written = cache_creation_input_tokens or 0
        written_1h = min(cache_write_1h_tokens or 0, written)
        out = output_tokens or 0
        if flat is not None:
            uncached = max(inp - cached - written, 0)
            writes = (written - written_1h) * flat.cache_write + written_1h * flat.cache_write_1h
            cost = uncached * flat.input + cached * flat.cache_read + writes + out * flat.output
            return PriceQuote(round(cost, 10), model_id)
        try:
            usage = Usage(
                input_tokens=inp,
                cache_read_tokens=cached or None,
                cache_write_tokens=written or None,
                cache_write_1h_tokens=written_1h or None,
                output_tokens=out,
            )
            return PriceQuote(float(model_price.calc_price(usage)["total_price"]), model_id)
        except Exception:
            return None

    def _lookup(
        self, provider: str, model: str, service_tier: str | None = None
    ) -> tuple[ModelPrice, _FlatRates | None, str] | None:
        key = (provider, model, service_tier)
        try:
            return self._cache[key]
        except KeyError:
            pass
        with self._lock:
            if key not in self._cache:
                if len(self._cache) >= _CACHE_MAX:  # tiers come from answers: any string
                    self._cache.clear()
                self._cache[key] = _resolve(provider, model, service_tier)
            return self._cache[key]


def _resolve(
    provider: str, model: str, service_tier: str | None = None
) -> tuple[ModelPrice, _FlatRates | None, str] | None:
    context = {"service_tier": service_tier} if service_tier else None
    try:
        found = calc_price(
            Usage(input_tokens=1, output_tokens=1), model_ref=model, provider_id=provider, price_context=context
        )
    except Exception:  # LookupError for unknown models/providers; anything else is as unknown
        return None
    model_price = found.model_price
    if any(isinstance(v, TieredPrices) for v in vars(model_price).values()):
        return model_price, None, found.model.id

    def rate(**usage: int) -> float:
        return float(Decimal(model_price.calc_price(Usage(**usage))["total_price"]) / _PROBE)

    try:
        flat = _FlatRates(
            input=rate(input_tokens=_PROBE),
            # genai-prices counts cache reads/writes inside input_tokens, as we do, so these
            # probes price only the cached (or cache-written) tokens.
            cache_read=rate(input_tokens=_PROBE, cache_read_tokens=_PROBE),
            cache_write=rate(input_tokens=_PROBE, cache_write_tokens=_PROBE),
            cache_write_1h=rate(input_tokens=_PROBE, cache_write_tokens=_PROBE, cache_write_1h_tokens=_PROBE),
            output=rate(output_tokens=_PROBE),
        )
    except Exception:
        return model_price, None, found.model.id
    return model_price, flat, found.model.id


def price_ai_request(row: AiRequest, catalog: Catalog | None, pricing: Pricing) -> None:
    """Fill a row's cost_usd and priced_model (writer thread: pricing never costs the event loop).

    The response's model first (what was actually served), else the requested one; a negotiated
    rate from the policy before the list price."""
    override = price_override(pricing.overrides(), row.provider, row.response_model, row.model)
    provider = catalog.providers.get(row.provider) if catalog and row.provider else None
    if row.billed_unit is not None and provider is not None and (unit := unit_cost(row, provider.pricing_provider)):
        # Billed per character, image or second (red-team F59): its tokens, if any, are not what
        # it costs. A policy discount still applies; token rates do not.
        row.cost_usd, row.priced_model = unit
        if override is not None and override.discount is not None:
            row.cost_usd = round(row.cost_usd * (1 - override.discount), 10)
            row.priced_model = f"{row.priced_model} less {override.discount:.0%} ({override.label})"
        return
    inp, out = row.input_tokens, row.output_tokens
    if override is not None and (inp is not None or out is not None):
        cached, written = row.cached_input_tokens or 0, row.cache_creation_input_tokens or 0
        cost = override.cost(inp or 0, out or 0, cached, written)
        if cost is not None:
            row.cost_usd, row.priced_model = cost, override.label
            return
    redirected = row.redirect_target is not None
    if redirected and catalog is not None:
        # The call ran at the gateway, as the model it served (a model_map's target): priced at
        # the gateway's list price where the catalog knows its host, never as the model asked for.
        gateway_host = urlsplit(f"//{row.redirect_target}").hostname  # a netloc: may carry a port
        provider = catalog.match_host(gateway_host) if gateway_host else None
    if provider is None or not provider.pricing_provider:
        return
    tokens = (inp, out, row.cached_input_tokens, row.cache_creation_input_tokens, row.cache_write_1h_tokens)
    tier = row.service_tier
    quote = pricing.quote(provider.pricing_provider, row.response_model or row.model, *tokens, service_tier=tier)
    if quote is None and row.response_model and row.model and not redirected:
        quote = pricing.quote(provider.pricing_provider, row.model, *tokens, service_tier=tier)
    if quote is None:
        return
    row.cost_usd, row.priced_model = quote.cost_usd, quote.model_id
    if override is not None and override.discount is not None:
        row.cost_usd = round(quote.cost_usd * (1 - override.discount), 10)
        row.priced_model = f"{quote.model_id} less {override.discount:.0%} ({override.label})"


def unit_cost(row: AiRequest, pricing_provider: str | None) -> tuple[float, str] | None:
    """(cost, priced_model) of a row billed per unit, by the served model else the requested one."""
    for model in (row.response_model, row.model):
        cost = UNIT_PRICES.cost(pricing_provider, model, row.billed_unit, row.billed_units)
        if cost is not None and model is not None:
            return cost, f"{model.lower()} per {row.billed_unit} (unit_prices.yaml)"
    return None
