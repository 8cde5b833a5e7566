"""Numbers, digit forms, invisible marks and split keys in request structure, through a real mitmdump.

Red-team round 2: a card number or SSN written as a JSON *number* (a tool schema's `enum` /
`default` / `const`, a previous tool call's input, MCP `tools/call` arguments) was never scanned
(F19); a card grouped by U+202F or written in Arabic-Indic digits was not found (F34); a Khmer
inherent vowel, an enclosing mark or a braille blank between a key's letters hid it (F17); a key
cut in two across tool-schema strings, `enum` values, `stop` sequences or a tool call's arguments
and the tool result was never joined (F30). Each test asserts what reached the fake upstream, what
the client got, and the row written.
"""

from __future__ import annotations

import json

import pytest

from tests.adversarial.wire import marker

AWS = "AKIA2OGYBAH6STMMNXNN"
CARD = 4539148803436467  # Luhn-valid Visa
SSN = 536228475
OPENAI = "https://api.openai.com/v1/chat/completions"
ANTHROPIC = "https://api.anthropic.com/v1/messages"
GEMINI = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
RESPONSES = "https://api.openai.com/v1/responses"
POLICY = (
    "dlp: {secrets: block, pii: log, types: {CREDIT_CARD: block, US_SSN: block}}\n"
    "mcp:\n  servers:\n    - {id: ex, host: example.com}\n"
)
MCP_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


@pytest.fixture(scope="module")
def gate(module_proxy_with):
    return module_proxy_with(POLICY)


def _post(proxy, upstream, user: str, url: str, body: dict, headers: dict[str, str] | None = None):
    """(the client's answer, what the upstream got of this request)."""
    mark = marker()
    sent = {"x-attack": mark, "authorization": "Bearer sk-test", "x-api-key": "sk-ant-test", "x-goog-api-key": "g"}
    with proxy.client(user) as client:
        answer = client.post(
            url, content=json.dumps(body, ensure_ascii=False).encode(), headers={**sent, **(headers or {})}
        )
    return answer, [s for s in upstream.seen if s.headers.get("x-attack") == mark]


def _row(proxy, user: str, table: str = "ai_requests") -> dict:
    [row] = proxy.rows(f"user_name = '{user}'", expect=1, table=table)
    return row


def _chat(content: str, **extra) -> dict:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], **extra}


def _tool(name: str, parameters: dict, description: str = "") -> dict:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


# --- F19: numbers ----------------------------------------------------------------------------------

NUMBER_BODIES = {
    "chat-tool-enum": (
        OPENAI,
        _chat(
            "charge it",
            tools=[_tool("charge", {"type": "object", "properties": {"card": {"type": "integer", "enum": [CARD]}}})],
        ),
    ),  # fmt: skip
    "chat-tool-default-ssn": (
        OPENAI,
        _chat(
            "file it",
            tools=[_tool("file", {"type": "object", "properties": {"ssn": {"type": "integer", "default": SSN}}})],
        ),
    ),  # fmt: skip
    "responses-const": (
        RESPONSES,
        {
            "model": "gpt-4o-mini",
            "input": "fill the form",
            "text": {
                "format": {
                    "type": "json_schema",
                    "name": "f",
                    "schema": {"type": "object", "properties": {"card": {"const": CARD}}},
                }
            },
        },
    ),  # fmt: skip
    "anthropic-tool-use-input": (
        ANTHROPIC,
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 5,
            "messages": [
                {"role": "user", "content": "charge"},
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "t1", "name": "charge", "input": {"card": CARD}}],
                },
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
            ],
        },
    ),  # fmt: skip
    "gemini-function-call-args": (
        GEMINI,
        {
            "contents": [
                {"role": "user", "parts": [{"text": "charge"}]},
                {"role": "model", "parts": [{"functionCall": {"name": "charge", "args": {"card": CARD}}}]},
            ]
        },
    ),  # fmt: skip
}


@pytest.mark.parametrize("name", list(NUMBER_BODIES))
def test_a_card_or_ssn_written_as_a_json_number_is_blocked(gate, upstream, name):
    url, body = NUMBER_BODIES[name]
    user = f"num-{name}"
    answer, seen = _post(gate, upstream, user, url, body)
    assert seen == [], "a card number / SSN written as a JSON number reached the provider"
    assert answer.status_code == 403
    row = _row(gate, user)
    assert row["dlp_action"] == "block" and ("CREDIT_CARD" in row["dlp_findings"] or "US_SSN" in row["dlp_findings"])


def test_a_card_as_an_mcp_integer_argument_is_refused_and_recorded(gate, upstream):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "charge", "arguments": {"card": CARD, "amount": 12}}}  # fmt: skip
    answer, seen = _post(gate, upstream, "num-mcp", "https://example.com/mcp", body, MCP_HEADERS)
    assert seen == [], "an integer card-number argument reached the MCP server"
    assert "mcp:ex:dlp" in answer.text
    call = _row(gate, "num-mcp", "mcp_calls")
    assert call["rule_id"] == "mcp:ex:dlp" and "CREDIT_CARD" in call["dlp_findings"]


def test_ids_timestamps_and_amounts_as_numbers_pass(gate, upstream):
    """Integer ids (19 digits, Luhn-valid), millisecond timestamps, sizes and amounts are no card."""
    record = {"id": 4539148803436467123, "created_ms": 1733400000000, "size": 1234567890, "amount": 4539.14}
    body = _chat("summarise", tools=[_tool("f", {"type": "object", "properties": {"r": {"default": record}}})])
    answer, seen = _post(gate, upstream, "num-ids", OPENAI, body)
    assert answer.status_code == 200 and len(seen) == 1
    assert _row(gate, "num-ids")["dlp_findings"] is None


# --- F34: digit groupings and digit scripts ---------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "card 4539\u202f1488\u202f0343\u202f6467",
        "card 4539\u00a01488\u00a00343\u00a06467",
        "card 4539\u20091488\u20090343\u20096467",
        "card 4539.1488.0343.6467",
        "card 4539\t1488\t0343\t6467",
        "card " + "".join(chr(0x660 + int(c)) for c in str(CARD)),
        "card " + " ".join("".join(chr(0x966 + int(c)) for c in g) for g in ("4539", "1488", "0343", "6467")),
        "ssn 536\u00a022\u00a08475",
    ],
    ids=["nnbsp", "nbsp", "thin", "dots", "tabs", "arabic-indic", "devanagari", "ssn-nbsp"],
)
def test_a_card_or_ssn_in_locale_grouping_or_other_digits_is_blocked(gate, upstream, text):
    user = f"num-f34-{abs(hash(text)) % 10**6}"
    answer, seen = _post(gate, upstream, user, OPENAI, _chat(text))
    assert seen == [] and answer.status_code == 403, f"{text!r} passed"
    assert _row(gate, user)["dlp_action"] == "block"


def test_french_numbers_with_narrow_spaces_pass(gate, upstream):
    answer, seen = _post(
        gate, upstream, "num-fr", OPENAI, _chat("Le budget est de 1\u202f250\u202f000 €, soit 12\u202f345 par mois.")
    )
    assert answer.status_code == 200 and len(seen) == 1


# --- F17: invisible and enclosing marks -------------------------------------------------------------


@pytest.mark.parametrize(
    "mark_char",
    ["\u17b4", "\u17b5", "\u20dd", "\u20e3", "\u0489", "\ua670", "\u2800", "\U000e0000"],
    ids=[
        "khmer-aq",
        "khmer-aa",
        "enclosing-circle",
        "keycap",
        "cyrillic-millions",
        "ten-millions",
        "braille-blank",
        "e0000",
    ],
)
def test_a_key_with_an_invisible_or_enclosing_mark_between_its_letters_is_blocked(gate, upstream, mark_char):
    user = f"num-f17-{ord(mark_char):x}"
    answer, seen = _post(gate, upstream, user, OPENAI, _chat("key " + mark_char.join(AWS)))
    assert seen == [] and answer.status_code == 403
    assert "AWS_ACCESS_KEY" in _row(gate, user)["dlp_findings"]


# --- F30: a key split across the strings of the request's structure -------------------------------

A, B = AWS[:8], AWS[8:]
SPLIT_BODIES = {
    "property-name|description": _chat(
        "hi", tools=[_tool("f", {"type": "object", "properties": {A: {"type": "string", "description": B}}})]
    ),  # fmt: skip
    "function-name|description": {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": A, "description": B}}],
    },  # fmt: skip
    "enum-values": _chat(
        "hi", tools=[_tool("f", {"type": "object", "properties": {"k": {"type": "string", "enum": [A, B]}}})]
    ),  # fmt: skip
    "enum-four-values": _chat(
        "hi",
        tools=[
            _tool(
                "f",
                {
                    "type": "object",
                    "properties": {"k": {"type": "string", "enum": [AWS[:5], AWS[5:10], AWS[10:15], AWS[15:]]}},
                },
            )
        ],
    ),  # fmt: skip
    "stop-sequences": _chat("hi", stop=[A, B]),
    "tool-arguments|tool-result": {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f", "arguments": json.dumps({"a": A})}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": B},
        ],
    },  # fmt: skip
}


@pytest.mark.parametrize("name", list(SPLIT_BODIES))
def test_a_key_split_across_structure_strings_is_blocked(gate, upstream, name):
    user = f"num-f30-{name}"
    answer, seen = _post(gate, upstream, user, OPENAI, SPLIT_BODIES[name])
    assert seen == [], f"a key split across {name} reached the provider"
    assert answer.status_code == 403
    assert "AWS_ACCESS_KEY" in _row(gate, user)["dlp_findings"]


def test_a_split_key_in_stop_sequences_is_redacted_in_place(module_proxy_with, upstream):
    proxy = module_proxy_with("dlp: {secrets: redact}\n")
    answer, [seen] = _post(proxy, upstream, "num-f30-redact", OPENAI, _chat("hi", stop=[A, B, "END"]))
    assert answer.status_code == 200
    sent = json.loads(seen.body)
    assert sent["stop"] == ["[AWS_ACCESS_KEY_1]", "", "END"] and AWS[:8] not in seen.body.decode()
