"""DLP on public material (issue 16): regression tests for each defect class found on other
scanners' test strings, and quality floors on tests/fixtures/dlp_public/public.jsonl (built and
scored by scripts/bench_dlp_public.py; every row names its source repository, path and commit).

Values below are the public test strings of those projects (their attribution is in the data
file) or computed here with the format's check digits; none is a real person's data or a live key.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from shadowgate.dlp import Placeholders
from shadowgate.dlp import Scanner
from shadowgate.dlp import redact

ROOT = Path(__file__).resolve().parents[1]
SCANNER = Scanner()


def found(text: str) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in SCANNER.scan(text)]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_dlp_public", ROOT / "scripts" / "bench_dlp_public.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_dlp_public"] = module
    spec.loader.exec_module(module)
    return module


# --- A value at the very start of the text (the look-ahead bound at offset 0) ----------------
@pytest.mark.parametrize(
    ("value", "type_"),
    [
        ("DE89370400440532013000", "IBAN"),
        ("078-05-1123", "US_SSN"),
        ("4012888888881881", "CREDIT_CARD"),
        ("+49 30 1234567", "PHONE"),
        ("192.168.10.7", "IPV4"),
        ("AB123456C", "UK_NINO"),
        ("X1234567L", "ES_NIE"),
    ],
)
def test_value_that_is_the_whole_text_is_found(value: str, type_: str) -> None:
    assert found(value) == [(type_, value)]
    assert found(value + " is mine") == [(type_, value)]
    assert found(f'{{"content": "{value}"}}') == [(type_, value)]


# --- Several values, repeated values --------------------------------------------------------
def test_every_card_of_a_list_is_found() -> None:
    text = "4012888888881881 4012-8888-8888-1881 4012 8888 8888 1881"
    assert found(text) == [("CREDIT_CARD", "4012888888881881"), ("CREDIT_CARD", "4012-8888-8888-1881"), ("CREDIT_CARD", "4012 8888 8888 1881")]


def test_a_grouped_number_is_still_one_value() -> None:
    # the groups of one card are not cards or phones of their own
    assert found("card 4012 8888 8888 1881 exp 12/29") == [("CREDIT_CARD", "4012 8888 8888 1881")]


def test_a_value_repeated_without_its_name_is_redacted_every_time() -> None:
    text = "DB_PASSWORD=Xy7#kd93jd\nthen log in with Xy7#kd93jd and not Xy7#kd93jdz"
    assert found(text) == [("PASSWORD", "Xy7#kd93jd"), ("PASSWORD", "Xy7#kd93jd")]
    ph = Placeholders()
    safe = redact(text, SCANNER.scan(text), ph.for_text(text))
    assert safe == "DB_PASSWORD=[PASSWORD_1]\nthen log in with [PASSWORD_1] and not Xy7#kd93jdz"


def test_an_id_found_by_its_context_word_is_found_again_without_it() -> None:
    text = "SSN 536228811 on file; applicant 536228811 called"
    assert [t for t, _ in found(text)] == ["US_SSN", "US_SSN"]


# --- Quality floors on the public material --------------------------------------------------
def test_public_material_floors() -> None:
    bench = _bench()
    rows = bench.load_rows()
    table = bench.score(SCANNER.scan, rows)
    totals: dict[str, list[int]] = {}
    for (kind, type_, _form), cell in table.items():
        claimed = bench.claimed_type({"kind": kind, "type": type_}) is not None
        key = kind if claimed else f"{kind} unclaimed"
        acc = totals.setdefault(key, [0, 0, 0, 0, 0])
        for i in range(5):
            acc[i] += cell[i]
    pii, secret = totals["pii"], totals["secret"]
    # figures at the time of writing minus a margin (see the script's docstring for the exact ones)
    assert pii[1] / pii[0] >= 0.85
    assert pii[4] / pii[3] <= 0.05
    assert secret[1] / secret[0] >= 0.73
    assert secret[4] / secret[3] <= 0.14
