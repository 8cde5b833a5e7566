"""Options: a broken file stops the proxy at start-up with file, line and reason."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    "option, content, message",
    [
        ("shadowgate_policy", "passthrough:\n  - 'https://x.com/'\n", "policy.yaml:2: 'passthrough'"),
        ("shadowgate_policy", "rulez: []\n", "policy.yaml:1: policy: unknown keys ['rulez']"),
        ("shadowgate_providers", "categories: {api: x}\nwire_formats: {}\nproviders: []\n", "'wire_formats' must be a non-empty mapping"),
        ("shadowgate_users", "networks:\n  - {cidr: 10.0.0.0/33, user: a}\n", "policy.yaml:2: bad cidr"),
    ],
)
def test_broken_file_fails_start_up_with_file_line_and_reason(fresh_proxy, tmp_path, option, content, message):
    path = tmp_path / "policy.yaml"
    path.write_text(content)
    with pytest.raises(RuntimeError) as e:
        fresh_proxy("--set", f"{option}={path}")
    assert message in str(e.value)


def test_bad_intercept_mode_is_rejected(fresh_proxy):
    with pytest.raises(RuntimeError, match="shadowgate_intercept must be one of catalog, all"):
        fresh_proxy("--set", "shadowgate_intercept=everything")


def test_attribution_map_names_people_and_groups(fresh_proxy, tmp_path):
    users = tmp_path / "users.yaml"
    users.write_text(
        "networks:\n  - {cidr: 127.0.0.0/8, group: laptops}\n  - {cidr: 127.0.0.1/32, user: dana, group: data-science}\n"
        "users:\n  erin: {group: platform}\n"
    )
    proxy = fresh_proxy("--set", f"shadowgate_users={users}", proxyauth="")
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    import httpx

    with httpx.Client(proxy=f"http://127.0.0.1:{proxy.port}", verify=proxy.ssl_context(), timeout=10) as client:
        assert client.post("https://api.openai.com/v1/chat/completions", json=body).status_code == 200
    [row] = proxy.rows("true", expect=1)
    assert (row["user_name"], row["user_group"], row["client_ip"]) == ("dana", "data-science", "127.0.0.1")
