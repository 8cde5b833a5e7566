import pytest

from shadowgate.config.policy import Facts
from shadowgate.config.policy import load_policy
from shadowgate.config.yamlfile import ConfigError


def policy_from(tmp_path, text):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return load_policy(path)


RULES = """\
rules:
  - id: interns-no-claude
    match: {provider: anthropic, group: interns}
    action: block
  - id: gpt4-to-gateway
    match: {provider: openai, model: "gpt-4o*"}
    action: redirect
    gateway: {openai_base_url: "https://gw.example/v1", key_env: GW_KEY}
  - id: lab-passthrough
    match: {client: 10.9.0.0/16, category: chat-web}
    action: passthrough
  - id: chat-apps
    match: {category: chat-web}
    action: coach
"""


@pytest.mark.parametrize(
    "facts, action, rule",
    [
        (Facts("api.anthropic.com", "anthropic", "api", user="i", group="interns"), "block", "interns-no-claude"),
        (Facts("api.anthropic.com", "anthropic", "api", user="e", group="eng"), "allow", "default"),
        (Facts("api.openai.com", "openai", "api", "openai-chat", "gpt-4o-mini"), "redirect", "gpt4-to-gateway"),
        (Facts("api.openai.com", "openai", "api", "openai-chat", "o3"), "allow", "default"),
        (Facts("chatgpt.com", "chatgpt", "chat-web", client_ip="10.9.1.1"), "passthrough", "lab-passthrough"),
        (Facts("chatgpt.com", "chatgpt", "chat-web", client_ip="10.8.1.1"), "coach", "chat-apps"),
    ],
)
def test_first_match_wins(tmp_path, facts, action, rule):
    decision = policy_from(tmp_path, RULES).decide(facts)
    assert (decision.action, decision.rule_id) == (action, rule)


def test_connection_decisions_wait_for_request_level_rules(tmp_path):
    policy = policy_from(tmp_path, RULES)
    # The model is unknown before decrypting, so a redirect-by-model rule keeps OpenAI decrypted.
    assert policy.decide_connection(Facts("api.openai.com", "openai", "api")) is None
    assert (
        policy.decide_connection(Facts("chatgpt.com", "chatgpt", "chat-web", client_ip="10.9.1.1")).action
        == "passthrough"
    )
    assert not policy.decrypts(
        "chatgpt.com", True, False, Facts("chatgpt.com", "chatgpt", "chat-web", client_ip="10.9.1.1")
    )
    assert policy.decrypts(
        "chatgpt.com", True, False, Facts("chatgpt.com", "chatgpt", "chat-web", client_ip="10.8.1.1")
    )


def test_observe_mode_turns_actions_into_would(tmp_path):
    policy = policy_from(tmp_path, "mode: observe\n" + RULES)
    decision = policy.decide(Facts("api.anthropic.com", "anthropic", "api", group="interns"))
    assert decision.action == "would_block" and not decision.enforced


def test_explain_lists_reasons_up_to_the_match(tmp_path):
    steps = policy_from(tmp_path, RULES).explain(Facts("chatgpt.com", "chatgpt", "chat-web", client_ip="10.8.0.1"))
    assert [r.id for r, _ in steps] == ["interns-no-claude", "gpt4-to-gateway", "lab-passthrough", "chat-apps"]
    assert steps[0][1] == "provider chatgpt not in ['anthropic']"
    assert "outside ['10.9.0.0/16']" in steps[2][1]
    assert steps[-1][1] is None


@pytest.mark.parametrize(
    "text, line, reason",
    [
        ("rules:\n  - id: a\n    action: nuke\n", 3, "action must be one of"),
        (
            "rules:\n  - id: a\n    match: all\n    action: block\n  - id: a\n    match: all\n    action: allow\n",
            5,
            "duplicate id 'a'",
        ),
        ("rules:\n  - id: a\n    action: block\n", 2, "an empty match meets every request"),
        ("rules:\n  - id: a\n    action: block\n    match: {}\n", 4, "write 'match: all'"),
        ("rules:\n  - id: a\n    action: redirect\n", 2, "a redirect needs a 'gateway'"),
        (
            "rules:\n  - id: a\n    action: redirect\n    gateway: {openai_base_url: 'https://g/v1', key: sk-123}\n",
            4,
            "never put the gateway key in the policy",
        ),
        ("rules:\n  - id: a\n    action: block\n    match: {modle: x}\n", 4, "unknown keys ['modle']"),
        ("rules:\n  - id: a\n    action: block\n    match: {client: 10.0.0.0/99}\n", 4, "match.client"),
        ("rules:\n  - id: a\n    action: allow\n    match: all\n    headers: {'Bad Header': x}\n", 5, "bad header"),
        ("budgets:\n  - id: b\n    per: user\n", 2, "set tokens_per_day"),
        ("budgets:\n  - id: b\n    tokens_per_day: -5\n", 3, "must be a positive number"),
        ("mode: yolo\n", 1, "mode must be 'enforce' or 'observe'"),
        ("rules: {a: 1}\n", 1, "'rules' must be a list"),
    ],
)
def test_invalid_policies_name_line_and_reason(tmp_path, text, line, reason):
    with pytest.raises(ConfigError) as e:
        policy_from(tmp_path, text)
    assert e.value.line == line and reason in e.value.reason


def test_policy_cli_check_and_explain(tmp_path, capsys):
    from shadowgate.cli import main

    path = tmp_path / "policy.yaml"
    path.write_text(RULES)
    assert main(["policy", "check", str(path)]) == 0
    assert "4 rules" in capsys.readouterr().out
    assert (
        main(
            [
                "policy",
                "explain",
                "--policy",
                str(path),
                "--host",
                "api.openai.com",
                "--path",
                "/v1/chat/completions",
                "--model",
                "gpt-4o",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "rule gpt4-to-gateway (line 5, redirect): MATCHES" in out and out.strip().endswith(
        "decision: redirect (rule gpt4-to-gateway)"
    )
    path.write_text("rules:\n  - id: a\n    action: nuke\n")
    assert main(["policy", "check", str(path)]) == 1
    assert f"{path}:3:" in capsys.readouterr().err


def test_unquoted_off_in_dlp_means_off(tmp_path):
    # YAML 1.1 reads `off` as false; a user writing `secrets: off` means the action.
    dlp = policy_from(tmp_path, "dlp:\n  secrets: off\n  pii: log\n  types: {EMAIL: off}\n").dlp
    assert (dlp.secrets, dlp.pii, dlp.types) == ("off", "log", {"EMAIL": "off"})
    # Every action off is DLP off: nothing is scanned.
    assert policy_from(tmp_path, "dlp: {secrets: off, pii: off, types: {EMAIL: off}}\n").dlp is None
    assert policy_from(tmp_path, "dlp: {secrets: off, pii: off, types: {EMAIL: log}}\n").dlp.types == {"EMAIL": "log"}


def test_a_model_named_by_reference_meets_the_strictest_rule_a_model_could_meet(tmp_path):
    policy = policy_from(
        tmp_path,
        "rules:\n"
        "  - {id: approved, match: {provider: openai, model: [gpt-4.1*]}, action: allow}\n"
        "  - {id: coach-o3, match: {provider: openai, model: 'o3*'}, action: coach}\n"
        "  - {id: openai-rest, match: {provider: openai}, action: block}\n"
        "  - {id: no-opus, match: {model: 'claude-opus*'}, action: block}\n",
    )
    stored = Facts(host="api.openai.com", provider="openai", model_reference="the stored prompt pmpt_1")
    decision = policy.decide(stored)
    assert (decision.action, decision.rule_id) == ("block", "openai-rest")  # a rule without a model ends the walk
    anthropic = Facts(host="api.anthropic.com", provider="anthropic", model_reference="the gateway config 'pc-1'")
    decision = policy.decide(anthropic)
    assert (decision.action, decision.rule_id) == ("block", "no-opus")
    assert "pc-1" in decision.reason and "any model" in decision.reason
    # The model named in the call is judged too: the stricter of the two holds.
    named = Facts(host="api.openai.com", provider="openai", model="gpt-4.1", model_reference="the stored prompt pmpt_1")
    assert policy.decide(named).rule_id == "openai-rest"
    assert policy.decide(Facts(host="api.openai.com", provider="openai", model="gpt-4.1")).rule_id == "approved"


def test_a_call_whose_only_model_is_another_is_judged_by_it(tmp_path):
    # A batch file whose every line runs one model names no model of its own (red-team F15).
    policy = policy_from(tmp_path, "rules:\n  - {id: no-gpt4o, match: {model: 'gpt-4o*'}, action: block}\n")
    facts = Facts(host="api.openai.com", provider="openai", other_models=("gpt-4o",))
    assert policy.decide(facts).rule_id == "no-gpt4o"
