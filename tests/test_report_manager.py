"""The report for a manager (issue 18): summary and contents first, the manager's sections before the
analyst's, unknown costs as – (never $0.0000) in tables and charts, and HTML tables that fit their
container, measured in headless Chromium."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import textwrap

import pytest

from shadowgate.report import render
from shadowgate.report import weekly
from tests.test_report import DS
from tests.test_report import EVENTS
from tests.test_report import POLICY
from tests.test_report import ROWS
from tests.test_report import args_for
from tests.test_report import report_json
from tests.test_report import row
from tests.test_report import tokens
from tests.test_report import write_db

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
LONG = "inference-gateway.research-cluster-eu-west-3.internal.example.com"
WIDE_ROWS = [  # long unbroken names: the cells a table has to wrap to fit
    *ROWS,
    row(
        "2026-11-19 09:00:00",
        "firstname.lastname@subsidiary.example.com",
        "platform-engineering-and-operations",
        "unknown",
        LONG,
        site=LONG,
        model="meta-llama/Llama-3.3-70B-Instruct-Turbo-with-a-long-name",
        **tokens(10, 10, None),
        key_fingerprint="hmac:" + "f" * 64,
        key_kind="openai-project",
        account_hint="org=org-" + "x" * 40 + " project=proj_" + "y" * 40,
        dlp_findings="CREDIT_CARD_NUMBER:3",
        dlp_action="redact",
        budget_status="monthly-engineering-budget:usd:97%",
    ),
]


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("manager")
    policy = folder / "policy.yaml"
    policy.write_text(textwrap.dedent(POLICY))
    db = write_db(folder / "sg.duckdb", WIDE_ROWS, EVENTS)
    texts = {}
    for fmt in ("md", "html", "rich"):
        out = folder / f"r.{fmt}"
        assert weekly.run_report(args_for(db, policy, week="2026-W47", format=fmt, out=out)) == 0
        texts[fmt] = out.read_text()
    texts["json"] = json.dumps(report_json(db, policy, week="2026-W47"))
    return texts


def positions(text: str, needles: list[str]) -> list[int]:
    found = [text.find(n) for n in needles]
    assert -1 not in found, [n for n, i in zip(needles, found) if i < 0]
    return found


def headings(fmt: str) -> tuple[str, ...]:
    return {"md": ("## ", ""), "html": (">", "</h2>"), "rich": ("", "")}[fmt]


@pytest.mark.parametrize("fmt", ["md", "html", "rich"])
def test_summary_and_contents_first_then_manager_then_analyst(reports, fmt):
    text = reports[fmt]
    doc = json.loads(reports["json"])
    before, after = headings(fmt)
    order = positions(text, [f"{before}Summary{after}", f"{before}Contents{after}", f"{before}Headline{after}"])
    assert order == sorted(order)
    manager = [
        "What sanctioned, unapproved and unknown mean",
        "AI apps",
        "Cost and tokens by provider",
        "Top 10 spenders",
        "Blind spots: AI traffic not inspected",
        "MCP servers",
    ]
    analyst = ["Unknown AI endpoints", "Top 10 models by cost", "Key inventory", "Policy events", "MCP: top 10 tools"]
    body = text[order[2] :]  # after the contents, which list every title
    m = positions(body, [f"{before}{t}{after}" for t in manager])
    part = positions(body, [f"{before}{render.ANALYST_PART}{after}"])[0]
    a = positions(body, [f"{before}{t}{after}" for t in analyst])
    assert max(m) < part < min(a)
    # The summary's sentences say the numbers of the sections they summarise.
    summary = text[order[0] : order[1]]
    assert "9 AI requests from 6 people to 6 apps" in " ".join(summary.split())
    assert doc["headline"]["requests"]["value"] == 9
    assert "25 %" not in summary and "22 % of requests were sanctioned use" in " ".join(summary.split())


def test_contents_links_resolve(reports):
    for fmt, link, target in (("html", r'href="#([^"]+)"', 'id="{}"'), ("md", r"\]\(#([^)]+)\)", '<a id="{}"></a>')):
        links = re.findall(link, reports[fmt])
        assert len(links) >= 25, fmt
        for key in links:
            assert target.format(key) in reports[fmt], (fmt, key)


def test_unknown_cost_is_a_dash_in_tables_and_charts(reports):
    for fmt in ("md", "html", "rich"):
        assert "$0.0000" not in reports[fmt], fmt
    md = reports["md"]
    assert "| chatgpt | 1 | - | - | 0 | – | 0 |" in md  # cost by provider: no price
    html = reports["html"]
    chart = html[html.index('aria-label="Cost by provider"') :]
    chart = chart[: chart.index("</svg>")]
    assert re.search(r">chatgpt</text><rect [^>]*width=\"0\.0\"[^>]*/><text [^>]*>–</text>", chart), chart
    doc = json.loads(reports["json"])
    assert next(p for p in doc["cost"]["by_provider"] if p["provider"] == "chatgpt")["cost_usd"] is None


def test_a_period_with_no_price_at_all_has_an_unknown_cost(tmp_path):
    db = write_db(
        tmp_path / "sg.duckdb",
        [row("2026-11-17 11:00:00", "bob", "eng", "deepseek", DS, category="api", model="x", **tokens(10, 10, None))],
    )
    doc = report_json(db, week="2026-W47")
    assert doc["headline"]["cost_usd"] == {"value": None, "previous": 0, "change": None, "change_pct": None}
    for fmt in ("md", "html", "rich"):
        out = tmp_path / f"r.{fmt}"
        assert weekly.run_report(args_for(db, week="2026-W47", format=fmt, out=out)) == 0
        text = out.read_text()
        assert "$0.0000" not in text and "Estimated cost: unknown (–)" in " ".join(text.split()), fmt
    assert "| Estimated cost | – | $0.00 | – |" in (tmp_path / "r.md").read_text()  # no requests before: a known $0
    folder = tmp_path / "csv"
    assert weekly.run_report(args_for(db, week="2026-W47", format="csv", out=str(folder) + "/")) == 0
    head = {r["metric"]: r for r in csv.DictReader((folder / "headline.csv").open())}
    assert (head["cost_usd"]["value"], head["cost_usd"]["change"]) == ("", "")  # null, not 0


MEASURE = """<script>
addEventListener("load", () => {
  const wide = [...document.querySelectorAll("table")].filter(t => t.getBoundingClientRect().width > t.parentElement.clientWidth + 1
      || t.getBoundingClientRect().right > document.body.getBoundingClientRect().right + 1)
    .map(t => ((t.closest("div.wide") || t).previousElementSibling || {}).textContent + " " + Math.round(t.getBoundingClientRect().width)
         + ">" + t.parentElement.clientWidth);
  const svgs = [...document.querySelectorAll("svg")].filter(s => s.getBoundingClientRect().right > document.body.getBoundingClientRect().right + 1).length;
  const h2 = [...document.querySelectorAll("h2")].slice(0, 3).map(h => h.textContent);
  const pre = document.createElement("pre"); pre.id = "measured";
  pre.textContent = JSON.stringify({tables: document.querySelectorAll("table").length, wide, svgs, h2,
                                    page: document.documentElement.scrollWidth, view: innerWidth});
  document.body.appendChild(pre);
});
</script>"""


@pytest.mark.parametrize("width", [1280, 820])
def test_html_tables_fit_their_container_in_chromium(reports, tmp_path, width):
    assert CHROMIUM, "chromium is not installed (.ci/run installs it)"
    page = tmp_path / "r.html"
    page.write_text(reports["html"].replace("</body>", MEASURE + "</body>"))
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'p'}",
            f"--window-size={width},900",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    found = re.search(r'<pre id="measured">(.*?)</pre>', done.stdout)
    assert found, done.stderr[-2000:]
    measured = json.loads(found[1].replace("&gt;", ">").replace("&lt;", "<").replace("&amp;", "&"))
    assert measured["wide"] == [] and measured["svgs"] == 0, measured
    assert measured["tables"] >= 20
    assert measured["page"] <= measured["view"], measured  # no horizontal scrolling of the page
    assert measured["h2"] == ["Summary", "Contents", "Headline"]
