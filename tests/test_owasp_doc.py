"""docs/owasp-llm-top10.md names the tests that prove each risk's control: they must exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "owasp-llm-top10.md"
NAMED = re.compile(r"`(tests/[\w/]+\.py)`::`(\w+)`")


def sections() -> dict[str, str]:
    parts = re.split(r"^## (LLM\d\d:2025 .+)$", DOC.read_text(encoding="utf-8"), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def functions_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}


def test_every_risk_has_a_section_that_names_tests():
    found = sections()
    assert [title.split(":")[0] for title in found] == [f"LLM{i:02d}" for i in range(1, 11)]
    for title, body in found.items():
        assert NAMED.search(body), f"{title} names no test"
        for field in ("**Does**", "**Setting**", "**Tests**", "**Cannot**", "**Counter-measure**"):
            assert field in body, f"{title} has no {field}"


def test_every_named_test_exists():
    missing = []
    for path, name in NAMED.findall(DOC.read_text(encoding="utf-8")):
        file = ROOT / path
        if not file.is_file() or name not in functions_in(file) or not name.startswith("test_"):
            missing.append(f"{path}::{name}")
    assert not missing, f"docs/owasp-llm-top10.md names tests that do not exist: {missing}"
