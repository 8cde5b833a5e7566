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


def test_one_hour_cache_writes_are_priced_at_their_rate():
    # claude-3-7-sonnet: $3.75/M for five-minute writes, $6/M for one-hour ones (round-6b G16).
    p = Pricing()
    five_minutes = p.quote("anthropic", "claude-3-7-sonnet", 100_000, 0, None, 100_000)
    one_hour = p.quote("anthropic", "claude-3-7-sonnet", 100_000, 0, None, 100_000, cache_write_1h_tokens=100_000)
    assert (five_minutes.cost_usd, one_hour.cost_usd) == (pytest.approx(0.375), pytest.approx(0.6))
    half = p.quote("anthropic", "claude-3-7-sonnet", 100_000, 0, None, 100_000, cache_write_1h_tokens=50_000)
    assert half.cost_usd == pytest.approx(0.4875)


@pytest.mark.parametrize(
    ("model", "tier", "cost"),
    [("gpt-4.1", "priority", 3.5 + 14), ("o4-mini", "flex", (1.1 + 4.4) / 2), ("gpt-4.1", "default", 2 + 8)],
)
def test_the_service_tier_sets_the_price(model, tier, cost):
    # genai-prices' price variants (red-team F108, round-6b G17): gpt-4.1 is $2/$8 per M, priority
    # $3.50/$14; o4-mini $1.10/$4.40, flex half that. A tier no list names is priced as standard.
    assert Pricing().quote("openai", model, 1_000_000, 1_000_000, service_tier=tier).cost_usd == pytest.approx(cost)
    assert Pricing().quote("openai", model, 1_000_000, 1_000_000, service_tier="no-such-tier") is not None


def test_reasoning_is_priced_as_output():
    p = Pricing()
    assert p.quote("openai", "o3-mini", 100, 1000).cost_usd > p.quote("openai", "o3-mini", 100, 10).cost_usd


# --- the policy's negotiated prices (issue 18) ---------------------------------------------------

PRICES = """\
prices:
  - provider: openai
    model: "corp-*"
    input_per_mtok: 3
    output_per_mtok: 9
  - provider: openai
    model: "gpt-4o-mini*"
    input_per_mtok: 1000
    output_per_mtok: 2000
    cached_input_per_mtok: 500
  - provider: anthropic
    discount: 0.25
"""


def priced(policy, provider: str, model: str, inp: int, out: int, cached: int | None = None):
    import datetime as dt

    from shadowgate.config.catalog import load_catalog
    from shadowgate.storage.pricing import price_ai_request
    from shadowgate.storage.rows import AiRequest

    row = AiRequest(
        ts=dt.datetime(2025, 1, 1), provider=provider, model=model, input_tokens=inp, output_tokens=out,
        cached_input_tokens=cached,
    )  # fmt: skip
    price_ai_request(row, load_catalog(), Pricing(lambda: policy.prices))
    return row.cost_usd, row.priced_model


def test_policy_prices_come_before_the_list_price(tmp_path):
    from shadowgate.config.policy import load_policy

    path = tmp_path / "policy.yaml"
    path.write_text(PRICES)
    policy = load_policy(path)
    # Negotiated rates, cached tokens at their own rate (they are part of input_tokens).
    assert priced(policy, "openai", "gpt-4o-mini", 1000, 100, cached=400) == (
        pytest.approx(600 * 0.001 + 400 * 0.0005 + 100 * 0.002),
        "prices:openai/gpt-4o-mini*",
    )
    # A model the list price does not know, priced by the company's rate.
    assert Pricing().quote("openai", "corp-llm-7", 10, 10) is None
    assert priced(policy, "openai", "corp-llm-7", 1_000_000, 1_000_000) == (12.0, "prices:openai/corp-*")
    # A discount off the list price.
    list_cost = Pricing().quote("anthropic", "claude-sonnet-4-5", 1000, 500).cost_usd
    cost, label = priced(policy, "anthropic", "claude-sonnet-4-5", 1000, 500)
    assert cost == pytest.approx(list_cost * 0.75) and label.endswith("less 25% (prices:anthropic/*)")
    # No entry: the list price.
    assert priced(policy, "openai", "gpt-4o", 1000, 500)[0] == pytest.approx(
        Pricing().quote("openai", "gpt-4o", 1000, 500).cost_usd
    )


@pytest.mark.parametrize(
    "entry, message",
    [
        ("  - {provider: openai, discount: 0.1, input_per_mtok: 1}", "a discount or rates, not both"),
        ("  - {provider: openai, input_per_mtok: 1}", "set input_per_mtok and output_per_mtok"),
        ("  - {provider: openai, discount: 1.5}", "discount is a fraction"),
        ("  - {provider: openai, input_per_mtok: -1, output_per_mtok: 1}", "must be a number >= 0"),
        ("  - {provider: openai, input_per_mtk: 1, output_per_mtok: 1}", "unknown key 'input_per_mtk'"),
        ("  - {model: gpt-4o, discount: 0.1}", "provider .a catalog provider id. is required"),
    ],
)
def test_a_broken_prices_entry_is_refused_with_its_line(tmp_path, entry, message):
    from shadowgate.config.policy import load_policy
    from shadowgate.config.yamlfile import ConfigError

    path = tmp_path / "policy.yaml"
    path.write_text("prices:\n" + entry + "\n")
    with pytest.raises(ConfigError, match=message) as e:
        load_policy(path)
    assert ":2:" in str(e.value)


def test_a_misspelt_provider_in_prices_is_refused_against_the_catalog(tmp_path):
    from shadowgate.config.catalog import load_catalog
    from shadowgate.config.policy import load_policy
    from shadowgate.config.policy_check import check_policy
    from shadowgate.config.yamlfile import ConfigError

    path = tmp_path / "policy.yaml"
    path.write_text("prices:\n  - {provider: opnai, discount: 0.1}\n")
    with pytest.raises(ConfigError, match="'opnai' is not in the catalog; did you mean 'openai'"):
        check_policy(load_policy(path), load_catalog())


def test_negotiated_prices_reach_the_row_the_budget_and_the_usage_report(fresh_proxy, tmp_path):
    from shadowgate.report.usage import usage_rows

    policy = tmp_path / "policy.yaml"
    policy.write_text(PRICES + "budgets:\n  - {id: one-cent, per: user, match: {user: 'priced*'}, usd_per_day: 0.01}\n")
    proxy = fresh_proxy("--set", f"shadowgate_policy={policy}")
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    with proxy.client("priced_pat") as client:
        assert client.post("https://api.openai.com/v1/chat/completions", json=chat).status_code == 200
        [row] = proxy.rows("user_name = 'priced_pat'", expect=1)
        uncached = row["input_tokens"] - (row["cached_input_tokens"] or 0)
        expected = uncached * 0.001 + (row["cached_input_tokens"] or 0) * 0.0005 + row["output_tokens"] * 0.002
        assert row["priced_model"] == "prices:openai/gpt-4o-mini*"
        assert row["cost_usd"] == pytest.approx(expected) and expected > 0.01  # the list price is ~1000x less
        # The budget counts the negotiated cost: one call spent the day's cent.
        refused = client.post("https://api.openai.com/v1/chat/completions", json=chat)
    assert refused.status_code == 429 and "one-cent" in refused.text
    [usage] = [r for r in usage_rows(proxy.db, 1) if r[0] == "priced_pat"]
    assert usage[8] == pytest.approx(expected)  # the usage report's cost column


def test_a_redirected_call_is_priced_as_what_the_gateway_served():
    """new-user F12: mistral-large-latest mapped to gpt-4o-mini at the gateway was priced at Mistral
    Large's list price. A gateway the catalog knows prices the served model; one it does not is
    no reason to price the model that was never served."""
    import datetime as dt

    from shadowgate.config.catalog import load_catalog
    from shadowgate.storage.pricing import price_ai_request
    from shadowgate.storage.rows import AiRequest

    def row(target: str) -> AiRequest:
        return AiRequest(
            ts=dt.datetime(2025, 1, 1), provider="mistral", model="mistral-large-latest",
            response_model="gpt-4o-mini", input_tokens=1000, output_tokens=200, redirect_target=target,
        )  # fmt: skip

    served = row("api.openai.com:443")
    price_ai_request(served, load_catalog(), Pricing())
    assert served.cost_usd == pytest.approx(Pricing().quote("openai", "gpt-4o-mini", 1000, 200).cost_usd)
    unknown_gateway = row("llm.corp.example")
    price_ai_request(unknown_gateway, load_catalog(), Pricing())
    assert unknown_gateway.cost_usd is None
