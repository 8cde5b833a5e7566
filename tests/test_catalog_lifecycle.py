"""Renamed, acquired and ended services (`lifecycle`), multi-page `source`, and Copilot Chat on a shared host."""

from __future__ import annotations

import dataclasses
import datetime
import json

import pytest

from shadowgate.cli import main
from shadowgate.config.catalog import load_catalog
from shadowgate.config.catalog_lifecycle import STATUSES
from shadowgate.report import render
from shadowgate.wireformats import PARSERS
from tests.test_catalog_schema import assert_rejected
from tests.test_catalog_schema import write
from tests.test_report_sql import make_report
from tests.test_report_sql import policy_statuses  # noqa: F401 - a fixture the report test below uses
from tests.test_report_sql import proxy_db  # noqa: F401 - a fixture the report test below uses

CATALOG = """\
categories:
  coding-assistant: Coding assistants
wire_formats:
  openai-chat:
    endpoints:
      - {method: POST, path: '/v1/chat/completions', operation: chat, parser: openai-chat}
providers:
  - id: newcode
    name: New Code
    vendor: N
    category: coding-assistant
    hosts: [newcode.example]
    source:
      - https://docs.newcode.example/hosts
      - https://docs.newcode.example/regions
    verified: 2026-01-02
  - id: oldcode
    name: Old Code
    vendor: O
    category: coding-assistant
    hosts: [oldcode.example, "*.oldcode.example"]
    source: https://oldcode.example/docs
    verified: 2026-01-02
    lifecycle:
      status: retired
      date: 2025-05-30
      by: N
      successor: newcode
      source: https://oldcode.example/sunset
"""


@pytest.fixture(scope="module")
def shipped():
    return load_catalog(known_parsers=PARSERS)


def test_a_retired_service_keeps_its_hosts_and_says_what_became_of_it(tmp_path):
    catalog = load_catalog(write(tmp_path, "c.yaml", CATALOG), known_parsers=PARSERS)
    old = catalog.match_host("api.oldcode.example")
    assert old is not None and old.id == "oldcode"  # still matched: its traffic is still seen
    assert old.lifecycle is not None
    assert (old.lifecycle.status, old.lifecycle.date, old.lifecycle.successor) == (
        "retired",
        datetime.date(2025, 5, 30),
        "newcode",
    )
    assert old.lifecycle.describe() == "retired, owned by N, 2025-05-30, replaced by newcode"
    assert old.risk == "high"  # not scored: the level stays the documented facts table
    new = catalog.providers["newcode"]
    assert new.lifecycle is None
    assert new.sources == ("https://docs.newcode.example/hosts", "https://docs.newcode.example/regions")
    assert new.source == "https://docs.newcode.example/hosts"


@pytest.mark.parametrize(
    "old, new, line, reason",
    [
        ("      status: retired\n", "      status: dead\n", 25, "lifecycle.status must be one of"),
        ("      status: retired\n", "", 25, "lifecycle.status must be one of"),
        ("      source: https://oldcode.example/sunset\n", "", 25, "lifecycle.source must be the https URL"),
        ("source: https://oldcode.example/sunset", "source: http://oldcode.example/sunset", 29, "https URL"),
        ("      date: 2025-05-30\n", "      date: soon\n", 26, "lifecycle.date must be a date"),
        ("      by: N\n", "      by: ''\n", 27, "lifecycle.by must be a non-empty string"),
        ("      successor: newcode\n", "      successor: nocode\n", 28, "'nocode' is no catalogued id"),
        ("      successor: newcode\n", "      successor: oldcode\n", 28, "names the entry itself"),
        ("      by: N\n", "      owner: N\n", 27, "lifecycle: unknown keys ['owner']"),
        (CATALOG[CATALOG.index("    lifecycle:") :], "    lifecycle: retired\n", 24, "'lifecycle' must be a mapping"),
        (
            "    source:\n      - https://docs.newcode.example/hosts\n",
            "    source:\n      - docs.newcode.example/hosts\n",
            13,
            "'source' must be an https URL or a non-empty list",
        ),
        ("source: https://oldcode.example/docs", "source: []", 22, "'source' must be an https URL"),
    ],
)
def test_broken_lifecycle_and_sources_name_file_line_and_reason(tmp_path, old, new, line, reason):
    assert old in CATALOG
    assert_rejected(write(tmp_path, "c.yaml", CATALOG.replace(old, new)), line, reason)


def test_an_overlay_may_retire_a_shipped_service_in_favour_of_a_shipped_one(tmp_path):
    base = write(tmp_path, "c.yaml", CATALOG)
    overlay = write(
        tmp_path,
        "company.yaml",
        "providers:\n"
        "  - id: newcode\n    name: New Code\n    vendor: N\n    category: coding-assistant\n"
        "    hosts: [newcode.example]\n"
        "    lifecycle: {status: renamed, successor: oldcode, source: 'https://intranet.corp.example/ai'}\n",
    )
    catalog = load_catalog(base, known_parsers=PARSERS, extra=[overlay])
    assert catalog.providers["newcode"].lifecycle.successor == "oldcode"  # type: ignore[union-attr]
    overlay.write_text(overlay.read_text().replace("successor: oldcode", "successor: gone"))
    assert_rejected(base, 7, "'gone' is no catalogued id", (overlay,))


@pytest.mark.parametrize(
    "pid, status, host, successor",
    [
        ("bard", "renamed", "bard.google.com", "gemini-app"),
        ("copilot-workspace", "retired", "copilot-workspace.githubnext.com", None),
        ("refact", "retiring", "www.refact.ai", None),
        ("humanloop", "acquired", "humanloop.com", None),
        ("supermaven", "retiring", "x7.supermaven.com", "cursor"),
        ("windsurf", "acquired", "server.codeium.com", None),
    ],
)
def test_shipped_services_that_changed_hands_or_ended_are_still_matched(shipped, pid, status, host, successor):
    provider = shipped.match_host(host)
    assert provider is not None and provider.id == pid
    assert provider.lifecycle is not None
    assert (provider.lifecycle.status, provider.lifecycle.successor) == (status, successor)
    assert provider.lifecycle.source.startswith("https://")
    assert provider.lifecycle.status in STATUSES
    if successor:
        assert shipped.providers[successor].lifecycle is None  # the successor is the live service


def test_catalog_cli_shows_lists_and_diffs_lifecycles(tmp_path, capsys):
    assert main(["catalog", "show", "copilot-workspace"]) == 0
    out = capsys.readouterr().out
    assert "  lifecycle    retired, 2025-05-30 (source: https://gist.github.com/idan/" in out
    assert main(["catalog", "show", "you-com-api"]) == 0
    out = capsys.readouterr().out  # every page that names a host is printed
    assert "https://you.com/docs/api-reference/search/v1-search.md" in out
    assert "               https://you.com/docs/agents/docs-mcp-server.md" in out
    assert main(["catalog", "stats"]) == 0
    assert "renamed, acquired or ended: 6: bard (renamed) copilot-workspace (retired)" in capsys.readouterr().out
    old = write(tmp_path, "old.yaml", CATALOG.replace("status: retired", "status: retiring"))
    new = write(tmp_path, "new.yaml", CATALOG)
    assert main(["catalog", "diff", str(old), str(new)]) == 0
    assert capsys.readouterr().out.splitlines() == ["~ oldcode\tlifecycle"]


def test_the_weekly_reports_apps_table_says_what_became_of_a_service(proxy_db, policy_statuses):  # noqa: F811
    """Through the report's own SQL: a service with a lifecycle gets it in its row, the others none."""
    shipped = load_catalog(known_parsers=PARSERS)
    gone = shipped.providers["copilot-workspace"].lifecycle
    providers = [
        dataclasses.replace(p, lifecycle=gone) if p.id == "deepseek" else p for p in shipped.providers.values()
    ]
    report = make_report(proxy_db, policy_statuses, providers=providers)
    apps = {a["app"]: a["lifecycle"] for a in json.loads(render.to_json(report))["apps"]}
    assert apps["deepseek"] == "retired, 2025-05-30"
    assert apps["openai"] is None and apps["anthropic"] is None and apps["unknown:lab.example"] is None


@pytest.mark.parametrize(
    "host, path, expected",
    [
        ("m365.cloud.microsoft", "/chat", "m365-copilot-chat"),
        ("m365.cloud.microsoft", "/chat/conversation/123?auth=2", "m365-copilot-chat"),
        ("M365.Cloud.Microsoft.", "/chat/", "m365-copilot-chat"),
        # read as a forgiving server may read them: case, ;params, dot segments, escapes
        ("m365.cloud.microsoft", "/Chat", "m365-copilot-chat"),
        ("m365.cloud.microsoft", "/chat;x=1", "m365-copilot-chat"),
        ("m365.cloud.microsoft", "/x/../chat", "m365-copilot-chat"),
        ("m365.cloud.microsoft", "/%63hat", "m365-copilot-chat"),
        ("m365.cloud.microsoft", "//chat", "m365-copilot-chat"),
        # the rest of the Microsoft 365 app is not AI use
        ("m365.cloud.microsoft", "/", None),
        ("m365.cloud.microsoft", "/chatx", None),
        ("m365.cloud.microsoft", "/apps", None),
        ("m365.cloud.microsoft.evil.net", "/chat", None),
        ("evil-m365.cloud.microsoft", "/chat", None),
        ("cloud.microsoft", "/chat", None),
        ("copilot.cloud.microsoft", "/", "m365-copilot"),
        ("workiq.svc.cloud.microsoft", "/rest/beta/copilot/conversations", "m365-work-iq"),
    ],
)
def test_copilot_chat_counts_only_under_chat_on_the_shared_microsoft_365_host(shipped, host, path, expected):
    found = shipped.match(host, path)
    assert (found.id if found else None) == expected
    assert shipped.match_host("m365.cloud.microsoft") is None  # the host alone is not AI use
    assert "m365.cloud.microsoft" in shipped.path_scoped_hosts()  # decrypted to tell the paths apart


def test_through_the_proxy_respelled_copilot_chat_paths_are_its_and_a_retired_service_is_still_seen(proxy, tmp_path):
    """A rule on Copilot Chat holds however the client spells /chat (the server may forgive case and
    ;params), the rest of the Microsoft 365 host passes untouched, and a request to a retired
    service is still matched to it."""
    path = tmp_path / "policy.yaml"
    path.write_text(
        "rules:\n  - id: no-copilot-chat\n    match: {provider: m365-copilot-chat}\n    action: block\n"
        "  - {id: rest, match: all, action: allow}\n"
    )
    with proxy.options(shadowgate_policy=str(path)), proxy.client("m365-user") as client:
        upper = client.post("https://m365.cloud.microsoft/Chat/api", json={"q": "hi"})
        params = client.post("https://m365.cloud.microsoft/chat;x=1/api", json={"q": "hi"})
        home = client.post("https://m365.cloud.microsoft/apps/api", json={"q": "hi"})
        gone = client.post("https://copilot-workspace.githubnext.com/api", json={"q": "hi"})
    assert (upper.status_code, params.status_code) == (403, 403)
    assert "no-copilot-chat" in upper.text
    assert home.status_code != 403 and gone.status_code != 403
    rows = proxy.rows("user_name = 'm365-user'", expect=3)
    assert sorted((r["host"], r["provider"], r["decision"]) for r in rows) == [
        ("copilot-workspace.githubnext.com", "copilot-workspace", "allow"),
        ("m365.cloud.microsoft", "m365-copilot-chat", "block"),
        ("m365.cloud.microsoft", "m365-copilot-chat", "block"),
    ]
