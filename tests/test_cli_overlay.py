"""A company overlay (--extra FILE, the proxy's shadowgate_providers_extra) is seen by every
command that reads the catalog, exactly as the running proxy sees it (new-user F8)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shadowgate.cli import main
from tests.test_report import row
from tests.test_report import write_db

SHADOWGATE = str(Path(sys.executable).parent / "shadowgate")
OVERLAY = """\
providers:
  - id: corp-gateway
    name: Corp LLM gateway
    vendor: Corp
    category: api
    hosts: [llm.corp.example]
    wire_formats: [openai-chat]
    notes: the company's own gateway
"""
POLICY = """\
rules:
  - id: allow-gw
    match: {provider: corp-gateway}
    action: allow
  - id: block-unknown
    match: {provider: unknown}
    action: block
"""


@pytest.fixture
def files(tmp_path) -> tuple[Path, Path]:
    overlay, policy = tmp_path / "company.yaml", tmp_path / "policy.yaml"
    overlay.write_text(OVERLAY)
    policy.write_text(POLICY)
    return overlay, policy


def test_policy_check_with_the_overlay_accepts_what_the_proxy_accepts(files, capsys):
    overlay, policy = files
    assert main(["policy", "check", str(policy)]) == 1
    assert "'corp-gateway' is not in the catalog" in capsys.readouterr().err
    assert main(["policy", "check", str(policy), "--extra", str(overlay)]) == 0
    assert capsys.readouterr().out.startswith(f"ok: {policy}: 2 rules")


def test_policy_explain_with_the_overlay_decides_as_the_proxy_does(files, capsys):
    overlay, policy = files
    args = [
        "policy",
        "explain",
        "--policy",
        str(policy),
        "--host",
        "llm.corp.example",
        "--path",
        "/v1/chat/completions",
    ]
    assert main([*args, "--extra", str(overlay)]) == 0
    out = capsys.readouterr().out
    assert "provider=corp-gateway" in out and out.splitlines()[-1] == "decision: allow (rule allow-gw)"


def test_a_broken_overlay_is_refused_with_its_file_and_line(files, tmp_path, capsys):
    _, policy = files
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers:\n  - id: x\n    hosts: [llm.corp.example]\n")
    assert main(["policy", "check", str(policy), "--extra", str(bad)]) == 1
    assert f"{bad}:2:" in capsys.readouterr().err


def test_pac_sends_the_overlay_hosts_to_shadowgate(files):
    overlay, _ = files
    without = subprocess.run([SHADOWGATE, "pac"], capture_output=True, text=True, check=True).stdout
    pac = subprocess.run([SHADOWGATE, "pac", "--extra", str(overlay)], capture_output=True, text=True, check=True)
    assert '".llm.corp.example"' not in without
    assert '".llm.corp.example": 1' in pac.stdout and str(overlay) in pac.stdout


def test_report_names_an_overlay_app_from_the_overlay(files, tmp_path):
    overlay, policy = files
    db = write_db(
        tmp_path / "sg.duckdb", [row("2026-11-16 10:00:00", "alice", "eng", "corp-gateway", "llm.corp.example")]
    )
    out = subprocess.run(
        [SHADOWGATE, "report", "--db", str(db), "--week", "2026-W47", "--format", "json", "--policy", str(policy),
         "--extra", str(overlay)],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    app = {a["app"]: a for a in json.loads(out)["apps"]}["corp-gateway"]
    assert (app["name"], app["status"], app["notes"]) == ("Corp LLM gateway", "sanctioned", "the company's own gateway")


def test_serve_and_webapps_check_take_the_overlay(files, tmp_path):
    overlay, _ = files
    from shadowgate.cli import build_parser
    from shadowgate.console.data import load_sources

    args = build_parser().parse_args(["serve", "--extra", str(overlay)])
    sources = load_sources(args.db, None, args.providers, args.top, args.extra)
    assert "corp-gateway" in {p.id for p in sources.providers}
    har = tmp_path / "x.har"
    har.write_text(json.dumps({"log": {"entries": []}}))
    assert main(["webapps", "check", str(har), "--extra", str(overlay)]) == 0


def test_validating_an_overlay_as_a_catalog_says_to_give_it_as_an_overlay(files, capsys):
    """new-user F9: `catalog validate company.yaml` said only "'categories' must be a non-empty mapping"."""
    overlay, _ = files
    assert main(["catalog", "validate", str(overlay)]) == 2
    err = capsys.readouterr().err
    assert f"{overlay}:1: this looks like a company overlay (providers: without categories:)" in err
    assert "--extra" in err and "shadowgate_providers_extra" in err
    assert main(["catalog", "validate", "--extra", str(overlay)]) == 0


def test_validating_an_overlay_says_what_a_correction_drops(tmp_path, capsys):
    """new-user F25: an overlay entry with a catalogued id replaces the whole entry; validate says
    which hosts, wire formats and facts go with it."""
    overlay = tmp_path / "ov-openai.yaml"
    overlay.write_text(
        "providers:\n  - {id: openai, name: 'OpenAI API (ZDR)', vendor: OpenAI, category: api,"
        " hosts: [api.openai.com], wire_formats: [openai-chat]}\n"
    )
    assert main(["catalog", "validate", "--extra", str(overlay)]) == 0
    out = capsys.readouterr().out
    assert "what the overlays change in the catalog (an entry with a catalogued id replaces it whole):" in out
    changed = next(line for line in out.splitlines() if line.startswith("~ openai\t"))
    assert "-*.api.openai.com" in changed and "-platform.openai.com" in changed
    assert "wire_formats" in changed and "facts" in changed


def test_catalog_hosts_for_squid_has_the_overlay_and_no_overlapping_entries(files, capsys):
    """new-user F19: the Squid list from a command, overlays included, with no entry another one
    already covers under dstdomain (`.x` matches x and every name below it)."""
    overlay, _ = files
    assert main(["catalog", "hosts", "--extra", str(overlay)]) == 0
    plain = capsys.readouterr().out.splitlines()
    assert "llm.corp.example" in plain and "*.api.openai.com" in plain and "api.openai.com" in plain
    assert main(["catalog", "hosts", "--format", "squid", "--extra", str(overlay)]) == 0
    squid = capsys.readouterr().out.splitlines()
    assert "llm.corp.example" in squid and ".api.openai.com" in squid and "api.openai.com" not in squid
    domains = {d.lstrip(".") for d in squid}
    for entry in squid:
        name = entry.lstrip(".")
        parents = [name.split(".", i)[-1] for i in range(1, name.count(".") + 1)]
        assert not any(f".{p}" in squid for p in parents), entry  # no entry below a .domain entry
    assert len(domains) == len(squid)  # never both x and .x
