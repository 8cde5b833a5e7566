"""A policy checked against the catalog: ids that do not exist are refused with a suggestion,
rules that can never take effect are reported (issue 18: mistakes that pass silently)."""

from __future__ import annotations

import pytest

from shadowgate.cli import main
from shadowgate.config.catalog import load_catalog
from shadowgate.config.policy import Facts
from shadowgate.config.policy import load_policy
from shadowgate.config.policy_check import check_policy
from shadowgate.config.yamlfile import ConfigError
from shadowgate.wireformats import PARSERS


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(known_parsers=PARSERS)


def checked(tmp_path, text, catalog):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return check_policy(load_policy(path), catalog)


@pytest.mark.parametrize(
    "text, line, reason",
    [
        (
            "rules:\n  - id: a\n    match: {provider: deepsek}\n    action: block\n",
            2,
            "'deepsek' is not in the catalog; did you mean 'deepseek'?",
        ),
        ("rules:\n  - id: a\n    match: {category: chat}\n    action: block\n", 2, "did you mean 'chat-web'?"),
        (
            "rules:\n  - id: a\n    match: {wire_format: openai-chats}\n    action: block\n",
            2,
            "match.wire_format: 'openai-chats'",
        ),
        (
            "budgets:\n  - id: b\n    match: {provider: [openai, antropic]}\n    tokens_per_day: 5\n",
            2,
            "budget 'b': match.provider: 'antropic'",
        ),
    ],
)
def test_ids_the_catalog_does_not_know_are_refused_with_line_and_suggestion(tmp_path, catalog, text, line, reason):
    with pytest.raises(ConfigError) as e:
        checked(tmp_path, text, catalog)
    assert e.value.line == line and reason in e.value.reason


def test_a_rule_after_a_wider_one_is_reported_as_shadowed(tmp_path, catalog):
    warnings = checked(
        tmp_path,
        "rules:\n"
        "  - id: chat-apps\n    match: {category: chat-web}\n    action: coach\n"
        "  - id: no-chatgpt\n    match: {provider: chatgpt}\n    action: block\n"
        "  - id: interns-claude\n    match: {provider: anthropic, group: interns}\n    action: block\n"
        "  - id: all-claude\n    match: {provider: anthropic}\n    action: allow\n"
        "  - id: everything\n    match: all\n    action: allow\n"
        "  - id: too-late\n    match: {provider: openai}\n    action: block\n",
        catalog,
    )
    assert len(warnings) == 2, warnings
    assert "rule 'no-chatgpt' is shadowed by rule 'chat-apps' (line 2)" in warnings[0]
    assert warnings[0].split(":")[1] == "5"
    assert "rule 'too-late' is shadowed by rule 'everything'" in warnings[1]


def test_a_rule_whose_provider_and_category_contradict_can_never_match(tmp_path, catalog):
    warnings = checked(
        tmp_path, "rules:\n  - id: x\n    match: {provider: openai, category: chat-web}\n    action: block\n", catalog
    )
    assert len(warnings) == 1 and "can never match" in warnings[0]


def test_narrower_rules_after_wider_ones_on_other_dimensions_are_not_flagged(tmp_path, catalog):
    warnings = checked(
        tmp_path,
        "rules:\n"
        "  - id: lab\n    match: {client: 10.9.0.0/16}\n    action: allow\n"
        "  - id: openai-from-lab-subnet\n    match: {provider: openai, client: 10.8.0.0/16}\n    action: block\n"
        "  - id: gpt4\n    match: {provider: openai, model: 'gpt-4*'}\n    action: block\n"
        "  - id: openai\n    match: {provider: openai}\n    action: coach\n",
        catalog,
    )
    assert warnings == []


def test_a_host_rule_after_a_category_rule_is_told_which_hosts_it_never_sees(tmp_path, catalog):
    """A header rule on chatgpt.com after `category: chat-web` never adds its header there: the
    catalog says chatgpt.com is a chat-web app. Globs, shared hosts and uncatalogued hosts are not
    judged (no facts to compare), and the same rule first is fine."""
    header_rule = (
        "  - id: workspace\n    match: {host: [chatgpt.com, '*.chatgpt.com', claude.ai, api.anthropic.com,"
        " intranet.example]}\n    action: allow\n    headers: {x-tenant: corp}\n"
    )
    coach = "  - id: chat-apps\n    match: {category: chat-web}\n    action: coach\n"
    apis = "  - id: apis\n    match: {provider: anthropic}\n    action: allow\n"
    warnings = checked(tmp_path, "rules:\n" + coach + apis + header_rule, catalog)
    assert len(warnings) == 2
    assert "rule 'workspace' never sees chatgpt.com, claude.ai: rule 'chat-apps' (line 2)" in warnings[0]
    assert "rule 'workspace' never sees api.anthropic.com: rule 'apis' (line 5) meets its requests" in warnings[1]
    assert checked(tmp_path, "rules:\n" + header_rule + coach + apis, catalog) == []
    only_users = "  - id: lab\n    match: {category: chat-web, user: 'lab-*'}\n    action: coach\n"
    assert checked(tmp_path, "rules:\n" + only_users + header_rule, catalog) == []  # narrower: not shadowed


def test_provider_unknown_meets_unlisted_ai_endpoints_only(tmp_path, catalog):
    path = tmp_path / "policy.yaml"
    path.write_text("rules:\n  - id: no-unknown-ai\n    match: {provider: unknown}\n    action: block\n")
    policy = load_policy(path)
    assert check_policy(policy, catalog) == []
    unlisted_ai = Facts("llm.example.net", wire_format="openai-chat")
    assert policy.decide(unlisted_ai).action == "block"
    assert policy.decide(Facts("intranet.example.net")).action == "allow"  # not AI: not 'unknown'
    assert policy.decide(Facts("api.openai.com", "openai", "api", wire_format="openai-chat")).action == "allow"


def test_policy_check_cli_refuses_unknown_ids_and_prints_warnings(tmp_path, capsys):
    path = tmp_path / "policy.yaml"
    path.write_text("rules:\n  - id: a\n    match: {provider: deepsek}\n    action: block\n")
    assert main(["policy", "check", str(path)]) == 1
    assert f"{path}:2:" in capsys.readouterr().err
    path.write_text(
        "rules:\n  - id: all\n    match: all\n    action: coach\n  - id: b\n    match: {provider: openai}\n    action: block\n"
    )
    assert main(["policy", "check", str(path)]) == 0
    captured = capsys.readouterr()
    assert "2 rules" in captured.out and f"warning: {path}:5: rule 'b' is shadowed" in captured.err


def test_the_proxy_refuses_a_policy_with_an_unknown_id_and_keeps_the_one_in_force(tmp_path):
    from mitmproxy import exceptions
    from mitmproxy.test import taddons

    from shadowgate.stages.settings import ShadowgateSettings

    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text("rules:\n  - id: no-deepseek\n    match: {provider: deepseek}\n    action: block\n")
    bad.write_text("rules:\n  - id: no-deepseek\n    match: {provider: deepsek}\n    action: block\n")
    settings = ShadowgateSettings()
    with taddons.context(settings) as tctx:
        tctx.configure(settings, confdir=str(tmp_path), shadowgate_policy=str(good))
        assert [r.id for r in settings.policy.rules] == ["no-deepseek"]
        with pytest.raises(exceptions.OptionsError, match="did you mean 'deepseek'"):
            tctx.configure(settings, shadowgate_policy=str(bad))
        assert settings.policy.rules[0].match.providers == frozenset({"deepseek"})


def test_a_company_overlay_adds_a_provider_the_policy_can_name(tmp_path):
    from mitmproxy import exceptions
    from mitmproxy.test import taddons

    from shadowgate.stages.settings import ShadowgateSettings

    overlay = tmp_path / "company.yaml"
    overlay.write_text(
        "providers:\n  - id: corp-llm\n    name: Corp LLM\n    vendor: Corp\n    category: api\n"
        "    hosts: [llm.corp.example]\n    wire_formats: [openai-chat]\n"
    )
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - id: corp\n    match: {provider: corp-llm}\n    action: allow\n")
    settings = ShadowgateSettings()
    with taddons.context(settings) as tctx:
        with pytest.raises(exceptions.OptionsError, match="'corp-llm' is not in the catalog"):
            tctx.configure(settings, confdir=str(tmp_path), shadowgate_policy=str(policy))
        tctx.configure(settings, shadowgate_providers_extra=[str(overlay)], shadowgate_policy=str(policy))
        assert settings.catalog.match_host("llm.corp.example").id == "corp-llm"


# One small example of every policy section beyond rules and budgets: `policy check` names each.
SECTION_EXAMPLES = {
    "inspect": ("inspect: ['*.ml.internal.example']\n", "inspect (1 host)"),
    "passthrough": ("passthrough: [pinned.example, '*.pinned.example']\n", "passthrough (2 hosts)"),
    "dlp": ("dlp: {secrets: block}\n", "dlp (secrets block, pii redact)"),
    "mcp": (
        "mcp:\n  servers:\n    - {id: jira, host: mcp.atlassian.com}\n"
        "    - {id: git, host: git.mcp.example, approve_tools: [push*]}\n  approval: {notify: [secops]}\n"
        "alerts:\n  destinations: {secops: {webhook: 'https://hooks.example.com/x'}}\n",
        "mcp (2 servers, approvals on 1, unlisted block)",
    ),
    "prices": ("prices:\n  - {provider: openai, discount: 0.1}\n", "prices (1 entry)"),
    "injection": ("injection: {prompts: block}\n", "injection"),
    "responses": ("responses: {exfil_links: block}\n", "responses"),
    "alerts": (
        "alerts:\n  destinations: {secops: {webhook: 'https://hooks.example.com/x'}}\n"
        "  rules:\n    - {id: new, event: new_app, to: [secops]}\n",
        "alerts",
    ),
    "accounts": ("accounts:\n  chatgpt: {workspace_ids: [4f1c]}\n", "accounts"),
}


def test_policy_check_names_every_control_section_in_force(tmp_path, capsys):
    from shadowgate.config.policy import _KEYS as SECTIONS

    assert set(SECTION_EXAMPLES) == SECTIONS - {"mode", "rules", "budgets"}, "give the new section an example here"
    path = tmp_path / "policy.yaml"
    rules = "rules:\n  - {id: a, match: {provider: openai}, action: allow}\n"
    for section, (text, named) in SECTION_EXAMPLES.items():
        path.write_text(rules + text)
        assert main(["policy", "check", str(path)]) == 0
        out = capsys.readouterr().out.splitlines()[0]
        assert f"mode enforce; controls: {named}" in out, (section, out)
    together = {k: v for k, v in SECTION_EXAMPLES.items() if k != "alerts"}  # mcp's example has alerts too
    path.write_text(rules + "".join(text for text, _ in together.values()))
    assert main(["policy", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert all(named in out for _, named in together.values()), out
    path.write_text(rules + "dlp: {secrets: off, pii: off}\n")  # every action off: nothing is scanned
    assert main(["policy", "check", str(path)]) == 0
    assert "; controls: none" in capsys.readouterr().out


REDIRECT_POLICY = """\
rules:
  - id: mistral-to-gateway
    match: {provider: mistral}
    action: redirect
    gateway: {openai_base_url: "https://llm.corp.example/v1", key_env: SG_TEST_UNSET_GATEWAY_KEY}
"""


def test_a_redirect_whose_gateway_key_is_unset_is_a_warning_and_strict_refuses_it(tmp_path, capsys, monkeypatch):
    """new-user F4: every call the rule redirects would be refused with 403; say so before it goes live."""
    monkeypatch.delenv("SG_TEST_UNSET_GATEWAY_KEY", raising=False)
    path = tmp_path / "policy.yaml"
    path.write_text(REDIRECT_POLICY)
    assert main(["policy", "check", str(path)]) == 0
    err = capsys.readouterr().err
    assert (
        f"warning: {path}:2: rule 'mistral-to-gateway': gateway key variable SG_TEST_UNSET_GATEWAY_KEY is not set in this environment"
        in err
    )
    assert main(["policy", "check", "--strict", str(path)]) == 1
    assert "warnings are errors (--strict)" in capsys.readouterr().err
    monkeypatch.setenv("SG_TEST_UNSET_GATEWAY_KEY", "k")
    assert main(["policy", "check", "--strict", str(path)]) == 0
    assert capsys.readouterr().err == ""


def test_the_proxy_logs_an_unset_gateway_key_when_it_loads_the_policy(tmp_path, caplog, monkeypatch):
    from mitmproxy.test import taddons

    from shadowgate.stages.settings import ShadowgateSettings

    monkeypatch.delenv("SG_TEST_UNSET_GATEWAY_KEY", raising=False)
    path = tmp_path / "policy.yaml"
    path.write_text(REDIRECT_POLICY)
    settings = ShadowgateSettings()
    with taddons.context(settings) as tctx:
        tctx.configure(settings, confdir=str(tmp_path), shadowgate_policy=str(path))
    assert "gateway key variable SG_TEST_UNSET_GATEWAY_KEY is not set" in caplog.text


def test_an_unknown_dlp_type_gets_a_suggestion_not_every_name(tmp_path, capsys):
    """new-user F6: one close name, and where the whole list is (`shadowgate scan --types`)."""
    path = tmp_path / "policy.yaml"
    path.write_text("dlp:\n  types: {GITHUB_TOKN: block}\n")
    assert main(["policy", "check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:2: dlp.types: unknown type 'GITHUB_TOKN'; did you mean 'GITHUB_TOKEN'?" in err
    assert "ZA_ID" not in err and "shadowgate scan --types" in err and len(err) < 300
    assert main(["scan", "--types"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert "GITHUB_TOKEN\tsecret" in listed and "EMAIL\tpii" in listed and listed == sorted(listed)


def test_a_misspelt_key_in_the_attribution_map_is_named_and_explain_reads_the_map(tmp_path, capsys):
    """new-user F11: `usr: alice` was reported as a missing user; and `policy explain --client` could
    not show the group the proxy would give that address."""
    users = tmp_path / "users.yaml"
    users.write_text("networks:\n  - {cidr: 127.0.0.1/32, usr: alice}\n")
    args = ["policy", "explain", "--host", "api.openai.com", "--client", "127.0.0.1", "--users", str(users)]
    assert main(args) == 1
    assert f"{users}:2: network 127.0.0.1/32: unknown key 'usr'; did you mean 'user'?" in capsys.readouterr().err
    users.write_text("networks:\n  - {cidr: 127.0.0.0/8, group: eng}\nusers:\n  alice: {grup: eng}\n")
    assert main(args) == 1
    assert f"{users}:4: user 'alice': unknown key 'grup'; did you mean 'group'?" in capsys.readouterr().err
    users.write_text("networks:\n  - {cidr: 127.0.0.0/8, user: alice, group: eng}\n")
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - {id: eng-no-openai, match: {provider: openai, group: eng}, action: block}\n")
    assert main([*args, "--policy", str(policy)]) == 0
    out = capsys.readouterr().out
    assert (
        "user=alice group=eng client=127.0.0.1" in out
        and out.splitlines()[-1] == "decision: block (rule eng-no-openai)"
    )


def test_a_provider_unknown_rule_gets_a_note_that_it_needs_decrypted_hosts(tmp_path, capsys):
    """new-user F26: under the default shadowgate_intercept=catalog the proxy never reads a request
    to an uncatalogued host, so such a rule acts nowhere; policy check says what it needs."""
    path = tmp_path / "policy.yaml"
    path.write_text("rules:\n  - {id: nounk, match: {provider: unknown}, action: block}\n")
    assert main(["policy", "check", "--strict", str(path)]) == 0  # a note, not a warning
    err = capsys.readouterr().err
    assert f"note: {path}:2: rule 'nounk' (provider: unknown) acts only on decrypted hosts" in err
    assert "shadowgate_intercept=all" in err
    path.write_text("inspect: ['*.ml.corp.example']\n" + path.read_text())
    assert main(["policy", "check", str(path)]) == 0
    assert "note:" not in capsys.readouterr().err


def test_a_price_glob_that_covers_several_list_priced_models_gets_a_note(tmp_path, capsys):
    """new-user F14: `gpt-4o*` also prices every gpt-4o-mini call at gpt-4o's negotiated rate."""
    path = tmp_path / "policy.yaml"
    path.write_text("prices:\n  - {provider: openai, model: 'gpt-4o*', input_per_mtok: 2.0, output_per_mtok: 8.0}\n")
    assert main(["policy", "check", str(path)]) == 0
    note = next(line for line in capsys.readouterr().err.splitlines() if line.startswith("note: "))
    assert note.startswith(f"note: {path}:2: prices 'gpt-4o*' for openai covers ") and "gpt-4o-mini" in note
    path.write_text("prices:\n  - {provider: openai, model: 'gpt-4o', input_per_mtok: 2.0, output_per_mtok: 8.0}\n")
    assert main(["policy", "check", str(path)]) == 0
    assert "note:" not in capsys.readouterr().err


def test_policy_check_checks_the_attribution_map_too(tmp_path, capsys):
    """new-user F11: no offline check for the users file; policy check --users reads it as the proxy would."""
    policy, users = tmp_path / "policy.yaml", tmp_path / "users.yaml"
    policy.write_text("rules:\n  - {id: eng, match: {group: eng}, action: allow}\n")
    users.write_text("networks:\n  - {cidr: 10.0.0.0/8, group: eng}\nusers:\n  alice: {group: eng}\n")
    assert main(["policy", "check", str(policy), "--users", str(users)]) == 0
    assert f"ok: {users}: 1 network, 1 user" in capsys.readouterr().out
    users.write_text("networks:\n  - {cidr: 10.0.0.0/8, grop: eng}\n")
    assert main(["policy", "check", str(policy), "--users", str(users)]) == 1
    assert (
        f"invalid: {users}:2: network 10.0.0.0/8: unknown key 'grop'; did you mean 'group'?" in capsys.readouterr().err
    )
