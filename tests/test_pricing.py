import pytest

from shadowgate.storage.pricing import Pricing


def test_flat_price_matches_genai_prices_with_cache_tokens():
    from genai_prices import Usage
    from genai_prices import calc_price

    quote = Pricing().quote("anthropic", "claude-sonnet-4-5", 1000, 500, 200, 100)
    exact = calc_price(
        Usage(input_tokens=1000, cache_read_tokens=200, cache_write_tokens=100, output_tokens=500),
        model_ref="claude-sonnet-4-5",
        provider_id="anthropic",
    )
    assert quote.cost_usd == pytest.approx(float(exact.total_price))


def test_tiered_price_uses_the_tier():
    from genai_prices import Usage
    from genai_prices import calc_price

    quote = Pricing().quote("google", "gemini-2.5-pro", 300_000, 500)
    exact = calc_price(Usage(input_tokens=300_000, output_tokens=500), model_ref="gemini-2.5-pro", provider_id="google")
    assert quote.cost_usd == pytest.approx(float(exact.total_price))


@pytest.mark.parametrize(
    "provider, model", [("openai", "no-such-model"), ("no-such-provider", "gpt-4o"), (None, "gpt-4o"), ("openai", None)]
)
def test_unknown_is_none_never_made_up(provider, model):
    assert Pricing().quote(provider, model, 10, 10) is None


def test_reasoning_is_priced_as_output():
    p = Pricing()
    assert p.quote("openai", "o3-mini", 100, 1000).cost_usd > p.quote("openai", "o3-mini", 100, 10).cost_usd
