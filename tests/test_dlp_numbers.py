"""DLP on JSON numbers, other digit forms, invisible marks and keys split across a body's structure
(red-team round 2: F19, F34, F17, F30). Through the proxy: tests/adversarial/test_dlp_numbers.py."""

from __future__ import annotations

import json
import time

import pytest

from shadowgate.config.policy import DlpPolicy
from shadowgate.dlp import Placeholders
from shadowgate.dlp import Scanner
from shadowgate.dlp import redact
from shadowgate.mcp.dlp import scan_hidden
from shadowgate.wireformats.bodyscan import BodyScan
from shadowgate.wireformats.bodyscan import adjacent_texts
from shadowgate.wireformats.scope import number_reading
from shadowgate.wireformats.scope import request_pieces

SCANNER = Scanner()
AWS = "AKIA2OGYBAH6STMMNXNN"
CARD = 4539148803436467


def _scan(body, action: str = "block") -> tuple[object, BodyScan]:
    scan = BodyScan(SCANNER.scan, lambda _: action, Placeholders().placeholder, time.thread_time() + 5)
    return scan.json(body), scan


# --- F19: numbers -------------------------------------------------------------------------------


def test_a_number_reads_as_its_digits_after_its_key_names():
    assert number_reading(CARD, ("tools", 0, "properties", "card", "enum", 0)) == ("card enum: 4539148803436467", 11)
    assert number_reading(536228475, ("ssn",)) == ("ssn: 536228475", 5)
    assert number_reading(float(CARD), ("card",)) == ("card: 4539148803436467", 6)


@pytest.mark.parametrize(
    "value, path",
    [
        (True, ("card",)),
        (12345678, ("ssn",)),  # 8 digits: a count, a size
        (4539.5, ("card",)),  # an amount
        (1733400000000, ("created_ms",)),  # a timestamp, under no name that says what it is
        (536228475, ("order",)),  # 9 digits, not named an id
        (4539148803436467123, ("id",)),  # 19 digits, Luhn-valid: ids are this long, cards rarely
    ],
)
def test_numbers_that_can_hold_no_value_are_not_read(value, path):
    assert number_reading(value, path) is None


@pytest.mark.parametrize(
    "body",
    [
        {"tools": [{"function": {"parameters": {"properties": {"card": {"type": "integer", "enum": [CARD]}}}}}]},
        {"messages": [{"content": [{"type": "tool_use", "input": {"card": CARD}}]}]},
        {"contents": [{"parts": [{"functionCall": {"args": {"n": -CARD}}}]}]},
        {"tools": [{"function": {"parameters": {"properties": {"ssn": {"default": 536228475}}}}}]},
    ],
)
def test_a_card_or_named_id_as_a_number_is_found_and_cannot_be_redacted(body):
    out, scan = _scan(body)
    assert set(scan.counts) & {"CREDIT_CARD", "US_SSN"}
    out, scan = _scan(body, "redact")
    assert out is body and scan.unredactable  # a placeholder would change the type: refused


def test_numbers_are_scanned_in_one_pass_and_key_names_count_once():
    body = {"rows": [{"card": CARD, "email_of": "x"}] * 3 + [{"ssn": 536228475}], "a@b.example.com": CARD}
    _, scan = _scan(body)
    assert scan.counts == {"CREDIT_CARD": 4, "US_SSN": 1, "EMAIL": 1}  # the key's e-mail once, as a key


def test_mcp_arguments_and_results_read_numbers():
    dlp = DlpPolicy(secrets="block", pii="log", types={"CREDIT_CARD": "redact"})
    counts, actions, unredactable = scan_hidden({"card": CARD, "amount": 12}, dlp)
    assert counts == {"CREDIT_CARD": 1} and unredactable == ["CREDIT_CARD"]
    assert scan_hidden({"id": 4539148803436467123, "ts": 1733400000000}, dlp)[0] == {}


# --- F34 / F17: the normalised view -------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "4539\u202f1488\u202f0343\u202f6467",
        "4539\u30001488\u30000343\u30006467",
        "4539/1488/0343/6467",
        "".join(chr(0x6F0 + int(c)) for c in str(CARD)),  # extended Arabic-Indic (Persian) digits
        "\uff14\uff15\uff13\uff19148803436467",
    ],
)
def test_a_card_in_other_groupings_or_digits_is_redacted_whole(value):
    text = f"card {value} thanks"
    findings = SCANNER.scan(text)
    assert [f.type for f in findings] == ["CREDIT_CARD"]
    assert redact(text, findings, lambda f: "[C]") == "card [C] thanks"


@pytest.mark.parametrize(
    "mark", ["\u17b4", "\u17b5", "\u20de", "\u20e4", "\u0488", "\ua672", "\u2800", "\u2065", "\ufff3"]
)
def test_a_key_with_invisible_or_enclosing_marks_is_redacted_whole(mark):
    text = "key " + mark.join(AWS) + mark + " end"
    findings = SCANNER.scan(text)
    assert [f.type for f in findings] == ["AWS_ACCESS_KEY"]
    assert redact(text, findings, lambda f: "[K]") == "key [K] end"


def test_spaces_between_digits_in_prose_find_nothing():
    assert SCANNER.scan("Le budget: 1\u202f250\u202f000 €, 12\u00a0345 par mois, ٢٠٢٤ ٣ ١٥.") == []


# --- F30: the strings of a body's structure, joined ----------------------------------------------

A, B = AWS[:8], AWS[8:]


def test_adjacent_texts_leave_out_structure_and_read_json_arguments():
    body = {"messages": [{"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "f", "arguments": json.dumps({"a": A})}}]},
            {"role": "tool", "tool_call_id": "c1", "content": B}],
            "tools": [{"type": "function", "function": {"name": "g", "parameters": {"type": "object",
                       "properties": {"k": {"type": "string", "enum": ["x", "y"]}}}}}]}  # fmt: skip
    texts, _ = adjacent_texts(list(request_pieces(body)))
    assert [t for _, t in texts] == ["f", "a", A, B, "g", "k", "x", "y"]


def test_a_split_key_in_a_tool_call_argument_is_refused_in_redact_mode():
    body = {"messages": [{"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
            "function": {"name": "f", "arguments": json.dumps({"a": A})}}]},
            {"role": "tool", "tool_call_id": "c1", "content": B}]}  # fmt: skip
    out, scan = _scan(body, "redact")
    assert scan.counts == {"AWS_ACCESS_KEY": 1} and scan.split == 1 and scan.unredactable


def test_a_split_key_in_enum_values_is_redacted_in_place():
    body = {"tools": [{"function": {"name": "f", "parameters": {"properties": {"k": {"enum": ["ok", A, B, "no"]}}}}}]}
    out, scan = _scan(body, "redact")
    assert out["tools"][0]["function"]["parameters"]["properties"]["k"]["enum"] == [
        "ok",
        "[AWS_ACCESS_KEY_1]",
        "",
        "no",
    ]


def test_glued_names_and_ids_are_no_secret():
    """Names, ids and paths glued together make long letter-digit runs: only keys of a format that
    stands on its own count there (not a generic secret, an AWS secret key, personal data)."""
    body = {"custom_id": "1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o-mini",
            "metadata": {"aws": "x"}, "tools": [{"function": {"name": "lookup", "parameters": {"properties": {
                "ticket": {"enum": ["4539", "1488", "0343", "6467"]},
                "secret_token": {"description": "Z7Q3M5X2R3W4T5YBZ7Q3M5X2R3W4T5YBab12cd34"}}}}}]}}  # fmt: skip
    _, scan = _scan(body)
    assert scan.counts == {} and scan.split == 0
