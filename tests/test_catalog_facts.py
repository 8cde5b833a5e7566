"""Risk facts: every shipped fact is sourced, the level is exactly docs/catalog.md's table, and broken
facts name file and line (in the catalog and in a company overlay)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shadowgate.config.catalog import load_catalog
from shadowgate.config.catalog_facts import FACT_KEYS
from shadowgate.config.catalog_facts import TRAINING_POINTS
from shadowgate.config.yamlfile import ConfigError
from shadowgate.wireformats import PARSERS
from tests.test_catalog_schema import CATALOG
from tests.test_catalog_schema import write

DOCS = Path(__file__).resolve().parent.parent / "docs" / "catalog.md"


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(known_parsers=PARSERS)


def documented_table() -> dict[str, int]:
    """The points table as docs/catalog.md prints it: '| fact | points |' rows."""
    rows = re.findall(r"^\| ([a-z_].*?) \| (\d) \|$", DOCS.read_text(encoding="utf-8"), re.M)
    return {fact: int(points) for fact, points in rows}


def documented_points(facts) -> int:
    """The level computed from the documentation's table alone, not from the module's code."""
    table = documented_table()
    tiers = facts.trains_on_inputs.values() or ["unknown"]
    points = max(table[f"trains_on_inputs, worst tier: {value}"] for value in tiers)
    if facts.retention_days is None or facts.retention_days > 30:
        points += table["retention_days unknown or more than 30"]
    if facts.enterprise_controls is not True:
        points += table["enterprise_controls not true"]
    if not {"soc2", "iso27001"} & set(facts.certifications):
        points += table["certifications without soc2 or iso27001"]
    return points


def documented_level(points: int) -> str:
    return "low" if points <= 1 else "medium" if points <= 3 else "high"


def test_the_documented_table_is_the_code_table():
    table = documented_table()
    assert {k.removeprefix("trains_on_inputs, worst tier: "): v for k, v in table.items() if "worst" in k} == (
        TRAINING_POINTS
    )
    assert "0–1 points is **low**, 2–3 **medium**, 4 or more **high**" in DOCS.read_text(encoding="utf-8")


def test_every_service_with_facts_scores_what_the_table_says(catalog):
    with_facts = [p for p in catalog.providers.values() if p.facts.sources]
    assert len(with_facts) >= 27
    for p in catalog.providers.values():
        points = documented_points(p.facts)
        assert (p.facts.risk_points, p.risk) == (points, documented_level(points)), p.id


@pytest.mark.parametrize(
    "pid, points, level",
    [
        ("openai", 1, "low"),  # api opt-in 1; 30 days, SOC 2, enterprise controls 0
        ("aws-bedrock", 2, "medium"),  # never 0; 30 days 0; controls 1; certifications 1
        ("azure-openai", 3, "medium"),  # never 0; retention, controls, certifications unknown 3
        ("chatgpt", 3, "medium"),  # consumer opt-out 2; retention unknown 1
        ("cursor", 3, "medium"),  # individual opt-out 2; retention unknown 1
        ("github-copilot", 4, "high"),  # individual opt-in 1; three unknowns 3
        ("claude", 5, "high"),  # opt-out 2; five years 1; controls 1; certifications 1
        ("deepseek-chat", 5, "high"),  # training unknown 2; three unknowns 3
        ("gemini-api", 7, "high"),  # unpaid tier trains with no way out 4; 55 days 1; 2 unknowns
        ("anthropic", 3, "medium"),  # api opt-in 1; 30 days 0; controls 1; certifications 1
        ("groq", 4, "high"),  # training unknown 2; not retained 0; controls 1; certifications 1
        ("deepl", 7, "high"),  # free translator trains with no way out 4; three unknowns 3
        ("mistral-site", 5, "high"),  # no facts at all
    ],
)
def test_shipped_levels_match_the_docs_table_of_examples(catalog, pid, points, level):
    p = catalog.providers[pid]
    assert (p.facts.risk_points, p.risk) == (points, level)
    if p.facts.sources:  # the docs' table of shipped levels says the same
        assert re.search(rf"^\|[^|]*`{re.escape(pid)}`[^|]*\|.*\| {points} \| {level} \|$", DOCS.read_text(), re.M), pid


def test_every_shipped_fact_has_its_own_https_source(catalog):
    for p in catalog.providers.values():
        f = p.facts
        given = {
            "trains_on_inputs": bool(f.trains_on_inputs),
            "retention_days": f.retention_days is not None,
            "residency": bool(f.residency),
            "enterprise_controls": f.enterprise_controls is not None,
            "certifications": bool(f.certifications),
            "headquarters": f.headquarters is not None,
        }
        assert set(given) == set(FACT_KEYS)
        assert {k for k, v in given.items() if v} == set(f.sources), p.id
        assert all(url.startswith("https://") for url in f.sources.values()), p.id


def test_overlay_facts_are_validated_with_the_overlays_file_and_line(tmp_path):
    base = write(tmp_path, "c.yaml", CATALOG)
    overlay = write(
        tmp_path,
        "company.yaml",
        "providers:\n"
        "  - id: llm\n"
        "    name: LLM (our contract)\n"
        "    vendor: V\n"
        "    category: api\n"
        "    hosts: [api.llm.example]\n"
        "    facts:\n"
        "      trains_on_inputs: {enterprise: never}\n"
        "      retention_days: 0\n"
        "      zero_retention: true\n",
    )
    with pytest.raises(ConfigError) as e:
        load_catalog(base, known_parsers=PARSERS, extra=[overlay])
    assert (e.value.path, e.value.line) == (str(overlay), 10)
    assert "unknown keys ['zero_retention']" in e.value.reason
    # corrected, the company's own contract terms replace the shipped facts and lower the level
    overlay.write_text(
        overlay.read_text().replace(
            "      zero_retention: true\n",
            "      enterprise_controls: true\n"
            "      certifications: [iso27001]\n"
            "      sources:\n"
            "        trains_on_inputs: https://contracts.corp.example/llm\n"
            "        retention_days: https://contracts.corp.example/llm\n"
            "        enterprise_controls: https://contracts.corp.example/llm\n"
            "        certifications: https://trust.llm.example\n",
        )
    )
    llm = load_catalog(base, known_parsers=PARSERS, extra=[overlay]).providers["llm"]
    assert (llm.facts.risk_points, llm.risk, llm.facts.retention_days) == (0, "low", 0)


def test_the_docs_table_lists_every_service_with_facts(catalog):
    text = DOCS.read_text(encoding="utf-8")
    for p in catalog.providers.values():
        if p.facts.sources:
            points = p.facts.risk_points
            row = rf"^\|[^|]*`{re.escape(p.id)}`[^|]*\|.*\| {points} \| {documented_level(points)} \|$"
            assert re.search(row, text, re.M), f"docs/catalog.md: no row for {p.id} ({points} points)"
