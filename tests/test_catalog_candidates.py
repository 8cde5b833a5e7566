"""`shadowgate catalog candidates`: unlisted AI endpoints from the proxy's database, as catalog entries.

The database is written by the proxy's own segment writer with the report tests' row builder, and
the command runs through the real CLI entry point.
"""

from __future__ import annotations

import pytest

from shadowgate.cli import main
from shadowgate.config.catalog import load_catalog
from shadowgate.wireformats import PARSERS
from tests.test_report import row
from tests.test_report import write_db

ROWS = [
    # two hosts of one unlisted site, two users, two wire formats
    row("2026-11-18 10:00:00", "alice", "eng", "unknown", "llm.lab.example", site="lab.example", model="llama-3-70b"),
    row("2026-11-18 11:00:00", "alice", "eng", "unknown", "llm.lab.example", site="lab.example", model="llama-3-70b"),
    row(
        "2026-11-19 09:00:00",
        "bob",
        "eng",
        "unknown",
        "gpu2.lab.example",
        site="lab.example",
        model="qwen2.5",
        wire_format="ollama",
        path="/api/chat",
    ),
    row(
        "2026-11-20 12:00:00",
        "carol",
        "sales",
        "unknown",
        "api.newai.example",
        site="newai.example",
        model="claude-x",
        wire_format="anthropic-messages",
        path="/v1/messages",
    ),
    # unknown when it was called, catalogued since: no candidate
    row("2026-11-20 13:00:00", "carol", "sales", "unknown", "api.groq.com", site="groq.com", model="llama3"),
    # a catalogued service: no candidate
    row("2026-11-21 10:00:00", "alice", "eng", "openai", "api.openai.com", category="api", model="gpt-4o"),
    # outside the window (30 days up to 2026-11-22): before and after
    row("2026-10-20 10:00:00", "dave", "ops", "unknown", "old.example", site="old.example"),
    row("2026-11-23 00:00:00", "dave", "ops", "unknown", "late.example", site="late.example"),
    # a crafted Host header: listed, but never written into the YAML as a key
    row(
        "2026-11-21 10:00:00", "mallory", "ops", "unknown", "x.example\nproviders: []", site="x.example\nproviders: []"
    ),
]
WINDOW = ["--until", "2026-11-22", "--days", "30"]


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return write_db(tmp_path_factory.mktemp("candidates") / "sg.duckdb", ROWS)


def candidates(capsys, db, *extra: str) -> str:
    assert main(["catalog", "candidates", "--db", str(db), *WINDOW, *extra]) == 0
    return capsys.readouterr().out


def test_lists_exactly_the_unlisted_endpoints_in_the_window(db, capsys):
    out = candidates(capsys, db)
    table = out.split("\n\n", 1)[0].splitlines()
    assert table[0] == "3 unlisted AI sites in the 30 days up to 2026-11-22"
    assert table[1:] == [
        "lab.example\t3 requests\t2 users\tollama,openai-chat\tllama-3-70b,qwen2.5\tgpu2.lab.example llm.lab.example",
        "newai.example\t1 requests\t1 users\tanthropic-messages\tclaude-x\tapi.newai.example",
        "x.example\\nproviders: []\t1 requests\t1 users\topenai-chat\t-\tx.example\\nproviders: []",
    ]
    for absent in ("groq", "openai.com", "old.example", "late.example"):
        assert absent not in out


def test_the_yaml_skeleton_is_a_valid_overlay_that_covers_them(db, capsys, tmp_path):
    skeleton = candidates(capsys, db, "--format", "yaml")
    assert skeleton.startswith("providers:\n  - id: lab-example\n")
    assert "\nproviders: []" not in skeleton.removeprefix("providers:\n")  # the crafted host stayed a comment
    overlay = tmp_path / "company.yaml"
    overlay.write_text(skeleton)
    catalog = load_catalog(known_parsers=PARSERS, extra=[overlay])
    lab = catalog.providers["lab-example"]
    assert lab.hosts == ("gpu2.lab.example", "llm.lab.example")
    assert lab.wire_formats == ("ollama", "openai-chat")
    assert lab.notes == "seen 2026-11-18..2026-11-19: 3 requests, 2 users; models llama-3-70b, qwen2.5"
    assert catalog.match("api.newai.example").id == "newai-example"
    # with the overlay, only the crafted host (which no entry can name) is left
    out = candidates(capsys, db, "--extra", str(overlay))
    assert out.startswith("1 unlisted AI sites")
    assert "lab.example" not in out and "newai" not in out


def test_a_candidate_never_takes_a_catalogued_id(db, capsys, tmp_path):
    overlay = tmp_path / "company.yaml"
    overlay.write_text(
        "providers:\n  - {id: lab-example, name: Lab, vendor: Lab, category: api, hosts: [other.example]}\n"
    )
    skeleton = candidates(capsys, db, "--format", "yaml", "--extra", str(overlay))
    assert "  - id: lab-example-local\n" in skeleton


def test_no_database_or_a_bad_window_is_an_error_not_an_empty_list(db, tmp_path, capsys):
    assert main(["catalog", "candidates", "--db", str(tmp_path / "none.duckdb")]) == 1
    assert "no shadowgate data" in capsys.readouterr().err
    for days in ("0", "999999"):
        assert main(["catalog", "candidates", "--db", str(db), "--days", days]) == 1
        assert "--days must be between 1 and 3660" in capsys.readouterr().err
