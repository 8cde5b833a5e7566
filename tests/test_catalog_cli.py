"""`shadowgate catalog list|show|stats|validate|diff` and `match --extra`, through the real CLI entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from shadowgate.cli import main
from tests.test_catalog_schema import CATALOG

OVERLAY = """\
providers:
  - id: corp-gateway
    name: Corp LLM gateway
    vendor: ACME
    category: api
    hosts: [llm.corp.internal]
    wire_formats: [openai-chat]
"""


def test_match_with_a_company_overlay(tmp_path, capsys):
    overlay = tmp_path / "company.yaml"
    overlay.write_text(OVERLAY)
    assert main(["catalog", "match", "llm.corp.internal", "/v1/chat/completions", "--extra", str(overlay)]) == 0
    assert capsys.readouterr().out == "llm.corp.internal\tcorp-gateway\tapi\topenai-chat:chat\n"
    assert main(["catalog", "match", "llm.corp.internal"]) == 0
    assert capsys.readouterr().out == "llm.corp.internal\t-\n"


def test_list_show_stats(capsys):
    assert main(["catalog", "list"]) == 0
    rows = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert ["mistral-site", "vendor-site", "high", "Mistral AI website"] in rows
    assert main(["catalog", "show", "mistral"]) == 0
    out = capsys.readouterr().out
    assert "api.eu.mistral.ai" in out and "https://docs.mistral.ai/inference/regional-inference" in out
    assert main(["catalog", "show", "no-such-service"]) == 1
    assert main(["catalog", "stats"]) == 0
    assert "vendor-site" in capsys.readouterr().out


def test_validate_names_file_and_line(tmp_path, capsys):
    overlay = tmp_path / "company.yaml"
    overlay.write_text(OVERLAY.replace("category: api", "category: intranet"))
    assert main(["catalog", "validate", "--extra", str(overlay)]) == 2
    assert f"{overlay}:2: provider 'corp-gateway': unknown category 'intranet'" in capsys.readouterr().err
    overlay.write_text(OVERLAY)
    assert main(["catalog", "validate", "--extra", str(overlay)]) == 0
    assert capsys.readouterr().out.startswith("ok: ")


def test_diff_shows_added_and_changed_services(tmp_path, capsys):
    from shadowgate.config.catalog import DEFAULT_CATALOG

    text = DEFAULT_CATALOG.read_text() if hasattr(DEFAULT_CATALOG, "read_text") else open(DEFAULT_CATALOG).read()
    old = tmp_path / "old.yaml"
    old.write_text(text.replace("api.eu.mistral.ai, ", ""))
    new = tmp_path / "new.yaml"
    new.write_text(text + OVERLAY.split("providers:\n", 1)[1])
    assert main(["catalog", "diff", str(old), str(new)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "+ corp-gateway\tCorp LLM gateway" in out
    assert "~ mistral\t+api.eu.mistral.ai" in out


def test_coverage_script_counts_names_and_shows_below_name_matches_apart(tmp_path):
    catalog = tmp_path / "c.yaml"
    catalog.write_text(CATALOG)
    listing = tmp_path / "list.txt"
    listing.write_text("# a test list\n# commit 0\napi.llm.example\nllm.example\nwww.saas.example\nnone.example\n")
    script = Path(__file__).resolve().parent.parent / "scripts" / "catalog_coverage.py"
    out = subprocess.run(
        [sys.executable, str(script), "--providers", str(catalog), "--list", str(listing), "--misses"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "covered: 2/4 = 50.0 %" in out  # the bare llm.example is not counted as covered
    assert "by category: api 1, vendor-site 1" in out
    assert "missed by name but covered below it (*.domain entries): 1 (llm.example)" in out
    assert out.rstrip().endswith("misses:\n  llm.example\n  none.example")
