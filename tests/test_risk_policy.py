"""Policy rules that match on the catalog's risk facts (`match: {risk: high}`, `trains_on_inputs`).

The levels come from providers.yaml through config/catalog_facts.py; these tests read them from
the shipped catalog rather than hard-coding them, so a catalog update that changes a service's
level changes what the rules must do, not whether the tests pass.
"""

from __future__ import annotations

import pytest

from shadowgate.cli import main
from shadowgate.config.catalog import load_catalog
from shadowgate.config.catalog_facts import UNKNOWN
from shadowgate.config.policy import BLOCK
from shadowgate.config.policy import Facts
from shadowgate.config.policy import load_policy
from shadowgate.config.policy_check import check_policy
from shadowgate.config.yamlfile import ConfigError
from shadowgate.resources import PROVIDERS_YAML

CHAT = {"model": "m-1", "messages": [{"role": "user", "content": "hi"}]}

POLICY = """\
rules:
  - id: no-training-services
    match: {trains_on_inputs: default}
    action: block
    message: this service trains on what you type
  - id: high-risk-apis
    match: {risk: high, category: api}
    action: block
  - id: rest
    match: all
    action: allow
"""


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(PROVIDERS_YAML)


def _facts(catalog, host: str) -> Facts:
    provider = catalog.match_host(host)
    return Facts(
        host=host,
        provider=provider.id if provider else None,
        category=provider.category if provider else None,
        risk=provider.risk if provider else None,
        trains_on_inputs=provider.facts.worst_training if provider else None,
    )


def _by_level(catalog, category: str, level: str) -> str:
    """An exact host of a catalogued service of this category and risk level."""
    for p in catalog.providers.values():
        if p.category == category and p.risk == level and p.facts.worst_training != "default":
            host = next((h for h in p.hosts if not h.startswith("*")), None)
            if host:
                return host
    raise AssertionError(f"the catalog has no {level} {category} service with an exact host")


def test_risk_and_training_rules_follow_the_catalog(tmp_path, catalog):
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    policy = load_policy(path)
    assert check_policy(policy, catalog) == []
    trains = next(p for p in catalog.providers.values() if p.facts.worst_training == "default")
    host = next(h for h in trains.hosts if not h.startswith("*"))
    assert policy.decide(_facts(catalog, host)).rule_id == "no-training-services"
    high = _by_level(catalog, "api", "high")
    assert policy.decide(_facts(catalog, high)).rule_id == "high-risk-apis"
    low = _by_level(catalog, "api", "low")
    assert policy.decide(_facts(catalog, low)).rule_id == "rest"
    # A high-risk chat app is not an API: the category narrows the risk rule.
    chat = _by_level(catalog, "chat-web", "high")
    assert policy.decide(_facts(catalog, chat)).rule_id == "rest"
    # A host the catalog does not list has no facts: risk rules do not guess about it.
    assert policy.decide(_facts(catalog, "llm.example.test")).rule_id == "rest"


def test_a_service_without_facts_counts_as_high_risk(catalog):
    assert (UNKNOWN.risk, UNKNOWN.risk_points, UNKNOWN.worst_training) == ("high", 5, "unknown")
    bare = [p for p in catalog.providers.values() if not p.facts.sources and p.is_usage]
    assert bare and all((p.risk, p.facts.worst_training) == ("high", "unknown") for p in bare)


@pytest.mark.parametrize(
    ("match", "reason"),
    [
        ("{risk: severe}", "match.risk: 'severe' is not one of ['low', 'medium', 'high']"),
        ("{trains_on_inputs: sometimes}", "match.trains_on_inputs: 'sometimes' is not one of"),
    ],
)
def test_unknown_levels_are_refused_with_the_line(tmp_path, match, reason):
    path = tmp_path / "policy.yaml"
    path.write_text(f"rules:\n  - id: r\n    match: {match}\n    action: block\n")
    with pytest.raises(ConfigError) as e:
        load_policy(path)
    assert reason in str(e.value) and f"{path}:3" in str(e.value)


def test_budgets_do_not_match_on_risk(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("budgets:\n  - id: b\n    per: user\n    match: {risk: high}\n    tokens_per_day: 10\n")
    with pytest.raises(ConfigError, match="budgets match on provider or category, not on risk facts"):
        load_policy(path)


def test_a_wider_risk_rule_shadows_a_narrower_one(tmp_path, catalog):
    path = tmp_path / "policy.yaml"
    path.write_text(
        "rules:\n"
        "  - id: risky\n    match: {risk: [medium, high]}\n    action: coach\n"
        "  - id: high-only\n    match: {risk: high, category: api}\n    action: block\n"
    )
    warnings = check_policy(load_policy(path), catalog)
    assert len(warnings) == 1 and "'high-only' is shadowed by rule 'risky'" in warnings[0]


def test_policy_explain_shows_the_risk_reason(tmp_path, capsys, catalog):
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    low = _by_level(catalog, "api", "low")
    assert main(["policy", "explain", "--policy", str(path), "--host", low]) == 0
    out = capsys.readouterr().out
    assert "rule high-risk-apis" in out and "no: risk low not in ['high']" in out
    assert "decision: allow (rule rest)" in out


def test_risk_rules_through_the_proxy(proxy, tmp_path, catalog):
    """The rule decides at the proxy: a high-risk API is refused before it is reached, a
    low-risk one is answered by the (fake) provider, and the row names the rule."""
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    high = _by_level(catalog, "api", "high")
    low = _by_level(catalog, "api", "low")
    with proxy.options(shadowgate_policy=str(path)), proxy.client("risk-user") as client:
        refused = client.post(f"https://{high}/v1/chat/completions", json=CHAT)
        answered = client.post(f"https://{low}/v1/chat/completions", json=CHAT)
    assert refused.status_code == 403 and "high-risk-apis" in refused.text
    assert answered.status_code == 200
    rows = {r["host"]: r for r in proxy.rows("user_name = 'risk-user'", expect=2)}
    assert rows[high]["decision"] == BLOCK and rows[high]["rule_id"] == "high-risk-apis"
    assert rows[low]["decision"] == "allow" and rows[low]["rule_id"] == "rest"


def test_an_ai_feature_on_a_shared_host_is_decrypted_and_told_apart_by_its_path(proxy, tmp_path):
    """Databricks serves its model endpoints under /serving-endpoints/ on each workspace's host,
    next to everything else: the host is decrypted, the AI path is an AI call (and the policy's
    rule for the entry applies to it), the rest of the host is neither recorded nor refused."""
    host = "acme-ws.cloud.databricks.com"
    path = tmp_path / "policy.yaml"
    path.write_text(
        "rules:\n  - id: no-databricks-models\n    match: {provider: databricks-model-serving, user: shared-bob}\n"
        "    action: block\n  - {id: rest, match: all, action: allow}\n"
    )
    with proxy.options(shadowgate_policy=str(path)):
        with proxy.client("shared-alice") as client:
            served = client.post(
                f"https://{host}/serving-endpoints/chat/completions",
                json=CHAT,
                headers={"x-fake-case": "openai-chat-cached-reasoning"},  # the fake's answer for any path
            )
            other = client.post(f"https://{host}/api/2.0/clusters/create", json={"name": "c"})
        with proxy.client("shared-bob") as client:
            refused = client.post(f"https://{host}/serving-endpoints/chat/completions", json=CHAT)
            allowed = client.get(f"https://{host}/api/2.0/clusters/list")
    assert served.status_code == 200 and refused.status_code == 403
    assert other.status_code != 403 and allowed.status_code != 403
    rows = proxy.rows("host = 'acme-ws.cloud.databricks.com'", expect=2)
    assert rows[0]["input_tokens"] is not None  # metered like any OpenAI-compatible answer
    assert [(r["user_name"], r["provider"], r["wire_format"], r["model"], r["decision"]) for r in rows] == [
        ("shared-alice", "databricks-model-serving", "openai-chat", "m-1", "allow"),
        ("shared-bob", "databricks-model-serving", "openai-chat", "m-1", "block"),
    ]
    assert all(r["inspected"] for r in rows)
