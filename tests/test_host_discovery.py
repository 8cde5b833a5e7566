"""Discovery of AI services the catalog does not list, from the TLS connections the proxy sees.

Clients open real CONNECT tunnels and TLS handshakes through a real mitmdump (the fake upstream
answers every host); what lands in host_sightings and what `shadowgate catalog candidates` prints
is checked, for the three settings of shadowgate_host_discovery.
"""

from __future__ import annotations

import httpx
import pytest

from shadowgate.cli import main
from shadowgate.config.ai_names import ai_name_reason


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("chat.newllm.ai", "tld:.ai"),
        ("my-demo.hf.space", "hosting:hf.space"),
        ("gpt4all-mirror.example.com", "word:gpt"),
        ("llm.internal", "word:llm"),
        ("ai-tools.example.co.uk", "word:ai"),
        ("api.openai.com.evil.example", "word:openai"),  # a look-alike is a candidate, never OpenAI
        ("www.example.org", None),
        ("mail.google.com", None),  # "ai" is not a substring match
        ("adult.example", None),
        ("chatwoot.example", None),  # support chat, not AI
        ("agent.example", None),
        ("10.1.2.3", None),
        ("ai.com", "word:ai"),
    ],
)
def test_name_signs(host, reason):
    assert ai_name_reason(host) == reason


def _connect(proxy, host: str, user: str) -> None:
    """A TLS handshake to `host` through the proxy; the answer does not matter."""
    with httpx.Client(proxy=proxy.url(user), verify=False, timeout=15) as client:
        try:
            client.get(f"https://{host}/")
        except httpx.HTTPError:
            pass  # the fake upstream's certificate names another host: the handshake is what counts


def test_sightings_and_candidates_through_the_proxy(proxy, capsys):
    for user, host in [
        ("disc-alice", "chat.newllm.ai"),
        ("disc-bob", "api.newllm.ai"),
        ("disc-bob", "api.newllm.ai"),
        ("disc-carol", "demo-x.gradio.live"),
        ("disc-carol", "demo-x.gradio.live"),
        ("disc-carol", "demo-x.gradio.live"),
        ("disc-alice", "www.example.org"),  # not AI-looking: no row
        ("disc-alice", "api.openai.com"),  # catalogued: an ai_requests matter, not a candidate
    ]:
        _connect(proxy, host, user)
    rows = proxy.rows("user_name LIKE 'disc-%'", expect=6, table="host_sightings")
    assert sorted((r["host"], r["user_name"], r["reason"]) for r in rows) == [
        ("api.newllm.ai", "disc-bob", "tld:.ai"),
        ("api.newllm.ai", "disc-bob", "tld:.ai"),
        ("chat.newllm.ai", "disc-alice", "tld:.ai"),
        ("demo-x.gradio.live", "disc-carol", "hosting:gradio.live"),
        ("demo-x.gradio.live", "disc-carol", "hosting:gradio.live"),
        ("demo-x.gradio.live", "disc-carol", "hosting:gradio.live"),
    ]
    assert {r["site"] for r in rows} == {"newllm.ai", "gradio.live"}
    assert not any(r["decrypted"] for r in rows)

    capsys.readouterr()
    assert main(["catalog", "candidates", "--db", str(proxy.db), "--days", "2"]) == 0
    out = capsys.readouterr().out
    listing = out[out.index("uncatalogued sites whose names look like AI") :].splitlines()[1:3]
    # Two people on newllm.ai rank above one person's three connections to a Space.
    assert listing[0].split("\t")[:4] == ["newllm.ai", "2 users", "3 connections", "tld:.ai"]
    assert listing[0].endswith("api.newllm.ai chat.newllm.ai")
    assert listing[1].split("\t")[:4] == ["gradio.live", "1 users", "3 connections", "hosting:gradio.live"]
    assert "www.example.org" not in out


def test_anonymous_keeps_distinct_people_but_names_nobody(proxy):
    with proxy.options(shadowgate_host_discovery="anonymous"):
        for user in ("anon-dave", "anon-erin", "anon-dave"):
            _connect(proxy, "anon-check.newllm.ai", user)
    rows = proxy.rows("host = 'anon-check.newllm.ai'", expect=3, table="host_sightings")
    names = [r["user_name"] for r in rows]
    assert len(rows) == 3 and all(n.startswith("anon:") for n in names)
    assert len(set(names)) == 2 and not any("dave" in n or "erin" in n for n in names)


def test_off_records_nothing(proxy):
    with proxy.options(shadowgate_host_discovery="off"):
        _connect(proxy, "off-check.newllm.ai", "off-frank")
    # A later sighting under the default proves the writer sealed what came before it.
    _connect(proxy, "after-off.newllm.ai", "off-frank")
    rows = proxy.rows("user_name = 'off-frank'", expect=1, table="host_sightings")
    assert [r["host"] for r in rows] == ["after-off.newllm.ai"]
