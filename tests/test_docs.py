"""The docs say what the code does: the generated references are current and complete, and every
link and every file path they give leads somewhere.

docs/options.md and docs/database.md are written by scripts/gen_docs.py. The completeness checks
read the options from the addons mitmproxy loads and the columns from a database the addons
actually create, not from the generator, so a generator that skipped something fails here too.
"""

from __future__ import annotations

import importlib.util
import re
import time
import unicodedata
from pathlib import Path

import duckdb
import pytest
from mitmproxy.test import taddons

from shadowgate.stages import default_addons

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PACKAGE = ROOT / "addons" / "shadowgate"
REGENERATE = "uv run python scripts/gen_docs.py"
PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_docs", ROOT / "scripts" / "gen_docs.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_references_are_current():
    for path, text in _load_generator().generated().items():
        assert path.exists(), f"{path.relative_to(ROOT)} is missing: run `{REGENERATE}`"
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(ROOT)} is out of date with the code: run `{REGENERATE}` and commit the result"
        )


def _table_rows(text: str) -> dict[str, str]:
    """First cell (a `code` name) -> the whole row, for every Markdown table row."""
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\|\s*`([^`]+)`\s*\|", line)
        if m:
            rows[m.group(1)] = line
    return rows


def test_every_shadowgate_option_is_in_the_options_reference():
    with taddons.context(*default_addons()) as tctx:
        declared = {n: o for n, o in tctx.options._options.items() if n.startswith("shadowgate_")}
    assert len(declared) >= 15  # the addons really loaded
    rows = _table_rows((DOCS / "options.md").read_text(encoding="utf-8"))
    documented = {n for n in rows if n.startswith("shadowgate_")}
    assert documented == set(declared), f"run `{REGENERATE}`"
    for name, opt in declared.items():
        # The help text as written, apart from the escaping a table cell needs.
        first_words = " ".join(opt.help.split()[:5]).replace("|", "\\|")
        assert first_words in rows[name], f"{name}: help text missing from docs/options.md; run `{REGENERATE}`"


@pytest.fixture(scope="module")
def database_columns(tmp_path_factory) -> dict[str, list[str]]:
    """Every view and column of a database the proxy's own addons created."""
    work = tmp_path_factory.mktemp("docsdb")
    db = work / "sg.duckdb"
    addons = default_addons()
    try:
        with taddons.context(*addons) as tctx:
            tctx.options.update(shadowgate_db=str(db), confdir=str(work))
            deadline = time.monotonic() + 30
            columns: dict[str, list[str]] = {}
            while time.monotonic() < deadline:
                if db.exists():
                    con = duckdb.connect(str(db), read_only=True)
                    try:
                        found = con.execute(
                            "SELECT table_name, column_name FROM information_schema.columns "
                            "ORDER BY table_name, ordinal_position"
                        ).fetchall()
                    finally:
                        con.close()
                    columns = {}
                    for table, column in found:
                        columns.setdefault(table, []).append(column)
                    if "ai_requests" in columns:
                        break
                time.sleep(0.1)
    finally:
        for addon in addons:
            done = getattr(addon, "done", None)
            if done:
                done()
    assert "ai_requests" in columns, "the addons created no ai_requests view"
    return columns


def _sections(text: str) -> dict[str, str]:
    """'## heading' -> the text under it."""
    parts = re.split(r"(?m)^## (.+)$", text)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def test_every_table_and_column_is_in_the_database_reference(database_columns):
    sections = _sections((DOCS / "database.md").read_text(encoding="utf-8"))
    for table, columns in database_columns.items():
        assert table in sections, f"table {table} missing from docs/database.md; run `{REGENERATE}`"
        documented = set(_table_rows(sections[table]))
        # `day` is every table's partition column, explained once at the top of the page.
        missing = [c for c in columns if c != "day" and c not in documented]
        assert not missing, f"{table}: columns {missing} missing from docs/database.md; run `{REGENERATE}`"
    assert set(sections) == set(database_columns), "docs/database.md lists a table the database does not have"


def _outside_code(text: str) -> str:
    """The text with fenced blocks and inline code removed (links and headings there are not real)."""
    text = re.sub(r"(?ms)^```.*?^```", "", text)
    return re.sub(r"`[^`\n]*`", "", text)


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).replace("`", "").strip().lower()
    kept = "".join(ch for ch in text if ch in " -_" or unicodedata.category(ch)[0] in "LN")
    return kept.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    found: set[str] = set()
    for line in re.sub(r"(?ms)^```.*?^```", "", path.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"#{1,6} (.+)", line)
        if m:
            slug = base = _slug(m.group(1))
            n = 0
            while slug in found:
                n += 1
                slug = f"{base}-{n}"
            found.add(slug)
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", _outside_code(page.read_text(encoding="utf-8"))):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading with that anchor")
    assert not broken, f"{page.relative_to(ROOT)}: {broken}"


_TOP_LEVEL = {p.name for p in ROOT.iterdir() if not p.name.startswith(".")}
_SUBPACKAGES = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_path_named_in_the_docs_exists(page):
    """`addons/...`, `scripts/...`, `tests/...` (and, as the README's tables write them, package
    paths such as `stages/act.py`) name files that exist: a moved module fails here."""
    missing = []
    text = re.sub(r"(?ms)^```.*?^```", "", page.read_text(encoding="utf-8"))
    for token in re.findall(r"`([^`\s]+)`", text):
        if any(ch in token for ch in "<>*{}$") or "/" not in token:
            continue
        first = token.split("/")[0]
        if first in _TOP_LEVEL:
            base = ROOT
        elif first in _SUBPACKAGES and page.name == "README.md":
            base = PACKAGE
        else:
            continue
        if not (base / token).exists():
            missing.append(token)
    assert not missing, f"{page.relative_to(ROOT)} names paths that do not exist: {missing}"


def test_the_layout_names_every_subpackage_and_every_stage():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    layout = readme.split("## Layout", 1)[1]
    unnamed = [name for name in sorted(_SUBPACKAGES) if f"{name}/" not in layout]
    assert not unnamed, f"README.md's layout does not name {unnamed}"
    concepts = (DOCS / "concepts.md").read_text(encoding="utf-8")
    stages = sorted(p.name for p in (PACKAGE / "stages").glob("*.py") if p.name != "__init__.py")
    unnamed = [s for s in stages if f"stages/{s}" not in concepts]
    assert not unnamed, f"docs/concepts.md's flow does not name the stage modules {unnamed}"


def test_the_readme_stays_short():
    size = len((ROOT / "README.md").read_bytes())
    assert size <= 8 * 1024, f"README.md is {size} bytes: move detail into docs/"


def _policy_examples() -> list[tuple[str, str]]:
    """Every fenced YAML block in the docs whose top level names a policy section (an example
    with a mistyped section still counts: it shares one key with a policy), as (page:line, text)."""
    import textwrap

    import yaml

    from shadowgate.config.policy import _KEYS as POLICY_SECTIONS

    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for m in re.finditer(r"(?ms)^( *)```ya?ml\n(.*?)^\1```", text):
            block = textwrap.dedent(m.group(2))
            try:
                doc = yaml.safe_load(block)
                keys = set(map(str, doc)) if isinstance(doc, dict) else set()
            except yaml.YAMLError:  # another tool's config (vector's ${VAR}), or a broken example
                keys = set(re.findall(r"(?m)^([A-Za-z_]\w*):", block))
            if keys & POLICY_SECTIONS:
                found.append((f"{page.relative_to(ROOT)}:{text.count(chr(10), 0, m.start()) + 2}", block))
    return found


POLICY_EXAMPLES = _policy_examples()


def test_the_policy_examples_are_found():
    places = [place.split(":")[0] for place, _ in POLICY_EXAMPLES]
    for page in ("docs/policy.md", "docs/dlp.md", "docs/mcp.md", "docs/alerts.md", "docs/screening.md"):
        assert page in places, f"no YAML policy example found in {page}: is the fence still ```yaml?"


@pytest.mark.parametrize("place, example", POLICY_EXAMPLES, ids=[place for place, _ in POLICY_EXAMPLES])
def test_every_policy_example_passes_policy_check(place, example, tmp_path, capsys, monkeypatch):
    """`shadowgate policy check` on each example: no error, and no warning (a dead or shadowed rule
    in an example teaches the mistake). A gateway key is set where the proxy runs, as here."""
    from shadowgate.cli import main

    for variable in re.findall(r"key_env:\s*([A-Za-z_][A-Za-z0-9_]*)", example):
        monkeypatch.setenv(variable, "test-gateway-key")

    path = tmp_path / "policy.yaml"
    path.write_text(example, encoding="utf-8")
    status = main(["policy", "check", str(path)])
    # A note says what depends on the proxy's options (provider: unknown needs decrypted hosts).
    err = "".join(line for line in capsys.readouterr().err.splitlines(True) if not line.startswith("note: "))
    assert status == 0 and not err, f"{place}: {err}"
