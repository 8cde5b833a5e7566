"""Recording edge cases (issue 14 section 6): what the proxy records and scans must be what the
upstream reads. A "stream" flag sent as a string, a key given twice or in another case, a
provider's explicit zero, the usage fields each format reports, and SSE with bare-CR lines."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from shadowgate.config.policy import DlpPolicy
from shadowgate.dlp import Placeholders
from shadowgate.stages.redact import scan_json
from shadowgate.stages.redact import shared_scanner
from shadowgate.wireformats import PARSERS
from shadowgate.wireformats import parse_json_body
from shadowgate.wireformats import prompt_strings
from shadowgate.wireformats.base import ResponseFacts
from shadowgate.wireformats.base import Route
from shadowgate.wireformats.base import Usage

CASES_DIR = Path(__file__).resolve().parents[1] / "addons" / "shadowgate" / "demo" / "cases"
CASES = {p.stem: json.loads(p.read_text()) for p in sorted(CASES_DIR.glob("*.json"))}
SECRET = "mail me at jane.doe@example.com"


def _route(parser: str, operation: str = "chat") -> Route:
    return Route(wire_format=parser, parser=parser, operation=operation)


# --------------------------------------------------------------------------- "stream" as a string

# Parsers whose stream flag is the body's "stream" field (Gemini and Bedrock stream by path).
BODY_STREAM_PARSERS = ["openai-chat", "openai-responses", "anthropic-messages", "cohere-v2", "ollama"]


@pytest.mark.parametrize("parser", BODY_STREAM_PARSERS)
@pytest.mark.parametrize(
    "value, streams",
    [
        (True, True),
        (False, False),
        # pydantic's lax bool, as vLLM/LiteLLM/SGLang read the field (vllm-project/vllm#1273)
        ("true", True),
        ("True", True),
        ("1", True),
        ("yes", True),
        ("on", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("no", False),
        ("off", False),
        (1, True),
        (0, False),
        # A string no lax parser maps: naive servers take a non-empty string as true, and a
        # stream taken for a whole body would be buffered, so it counts as a stream.
        ("stream please", True),
    ],
)
def test_stream_flag_is_read_as_the_upstream_reads_it(parser: str, value: Any, streams: bool) -> None:
    raw = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "stream": value})
    facts = PARSERS[parser].parse_request(_route(parser), {}, parse_json_body(raw.encode()))
    assert facts.streaming is streams


@pytest.mark.parametrize("parser, default", [("openai-chat", False), ("anthropic-messages", False), ("ollama", True)])
def test_absent_or_null_stream_keeps_the_format_default(parser: str, default: bool) -> None:
    for body in ({"model": "m", "messages": []}, {"model": "m", "messages": [], "stream": None}):
        assert PARSERS[parser].parse_request(_route(parser), {}, body).streaming is default


# --------------------------------------------------------------------------- duplicate keys

# The model sits in the body for these formats; Python's json, Go's encoding/json and JSON.parse
# give a server the last value of a repeated key.
BODY_MODEL_PARSERS = [
    "openai-chat",
    "openai-responses",
    "openai-embeddings",
    "anthropic-messages",
    "cohere-v2",
    "ollama",
]


@pytest.mark.parametrize("parser", BODY_MODEL_PARSERS)
def test_repeated_model_is_recorded_as_the_last_one(parser: str) -> None:
    raw = b'{"model": "allowed-model", "messages": [], "input": "x", "max_tokens": 5, "model": "blocked-model"}'
    body = parse_json_body(raw)
    assert body == json.loads(raw)  # the value the upstream's json.loads gives
    assert PARSERS[parser].parse_request(_route(parser), {}, body).model == "blocked-model"


def test_dlp_finds_a_secret_in_the_messages_a_repeated_key_shadows() -> None:
    # The upstream reads the last "messages"; a first-wins parser would read the first. DLP must
    # find the secret in either, and a redacted body sent on must not carry it at all.
    raw = json.dumps({"model": "m", "messages": [{"role": "user", "content": SECRET}]})[:-1]
    raw += ', "messages": [{"role": "user", "content": "hello"}]}'
    body = parse_json_body(raw.encode())
    assert body["messages"] == [{"role": "user", "content": "hello"}]
    assert SECRET in [text for _, text in prompt_strings(body)]
    cleaned, counts, actions = scan_json(body, shared_scanner(), Placeholders(), DlpPolicy())
    assert counts == Counter({"EMAIL": 1}) and actions == {"redact"}
    sent = json.dumps(cleaned)  # what Redact writes as the new request body
    assert "jane.doe@example.com" not in sent
    assert json.loads(sent)["messages"] == [{"role": "user", "content": "hello"}]


def test_dlp_redacts_both_values_of_a_repeated_key_in_place() -> None:
    raw = b'{"model": "m", "messages": [{"role": "user", "content": "a@example.com", "content": "b@example.com"}]}'
    body = parse_json_body(raw)
    cleaned, counts, _ = scan_json(body, shared_scanner(), Placeholders(), DlpPolicy())
    assert counts == Counter({"EMAIL": 2})
    # The visible value is redacted where it is; the shadowed one is not sent after the rewrite.
    assert json.loads(json.dumps(cleaned)) == {"model": "m", "messages": [{"role": "user", "content": "[EMAIL_1]"}]}


def test_a_secret_only_in_a_shadowed_nested_value_is_not_sent_on() -> None:
    raw = b'{"model": "m", "messages": [{"role": "user", "content": "a@example.com", "content": "hi"}]}'
    cleaned, counts, actions = scan_json(parse_json_body(raw), shared_scanner(), Placeholders(), DlpPolicy())
    assert counts == Counter({"EMAIL": 1}) and actions == {"redact"}
    assert json.dumps(cleaned) == '{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'


@pytest.mark.parametrize("key", ["MESSAGES", "Messages", "meſſageſ"])
def test_prompt_keys_match_in_any_case_as_go_servers_read_them(key: str) -> None:
    # Go's encoding/json (Ollama, Go gateways) fills the messages field from any case-folded key.
    body = parse_json_body(json.dumps({"model": "llama3.2", key: [{"role": "user", "content": SECRET}]}).encode())
    _, counts, _ = scan_json(body, shared_scanner(), Placeholders(), DlpPolicy())
    assert counts == Counter({"EMAIL": 1})


def test_bodies_without_repeated_keys_parse_to_plain_dicts() -> None:
    body = parse_json_body(b'{"model": "m", "messages": [{"role": "user", "content": "x"}]}')
    assert type(body) is dict and type(body["messages"][0]) is dict


# --------------------------------------------------------------------------- usage: explicit zeros and ignored fields


def _usage(parser: str, body: Any, headers: dict[str, str] | None = None) -> Usage:
    return PARSERS[parser].parse_response(headers or {"content-type": "application/json"}, body).usage


ZERO_CACHE = [
    (
        "openai-chat",
        {"usage": {"prompt_tokens": 9, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 0},
                   "completion_tokens_details": {"reasoning_tokens": 0}}},
        Usage(9, 3, 0, None, 0),
    ),
    (
        "openai-responses",
        {"id": "r", "status": "completed", "usage": {"input_tokens": 9, "output_tokens": 3,
         "input_tokens_details": {"cached_tokens": 0}, "output_tokens_details": {"reasoning_tokens": 0}}},
        Usage(9, 3, 0, None, 0),
    ),
    (
        "anthropic-messages",
        {"type": "message", "usage": {"input_tokens": 9, "output_tokens": 3, "cache_read_input_tokens": 0,
                                      "cache_creation_input_tokens": 0}},
        Usage(9, 3, 0, 0, None),
    ),
    (
        "gemini",
        {"usageMetadata": {"promptTokenCount": 9, "candidatesTokenCount": 3, "cachedContentTokenCount": 0,
                           "thoughtsTokenCount": 0}},
        Usage(9, 3, 0, None, 0),
    ),
    (
        "bedrock-converse",
        {"output": {"message": {"content": []}}, "usage": {"inputTokens": 9, "outputTokens": 3,
                                                           "cacheReadInputTokens": 0, "cacheWriteInputTokens": 0}},
        Usage(9, 3, 0, 0, None),
    ),
    (
        "cohere-v2",
        {"message": {"content": []}, "usage": {"tokens": {"input_tokens": 9, "output_tokens": 3}, "cached_tokens": 0}},
        Usage(9, 3, 0, None, None),
    ),
]  # fmt: skip


@pytest.mark.parametrize("parser, body, expected", ZERO_CACHE, ids=[c[0] for c in ZERO_CACHE])
def test_an_explicit_zero_is_recorded_as_zero_not_null(parser: str, body: Any, expected: Usage) -> None:
    assert _usage(parser, body) == expected


def test_cohere_v2_cached_tokens_are_recorded_whole_and_streamed() -> None:
    usage = {"billed_units": {"input_tokens": 6, "output_tokens": 4}, "tokens": {"input_tokens": 499, "output_tokens": 6},
             "cached_tokens": 448}  # fmt: skip
    assert _usage("cohere-v2", {"message": {"content": []}, "usage": usage}) == Usage(499, 6, 448, None, None)
    stream = PARSERS["cohere-v2"].stream_parser({"content-type": "text/event-stream"})
    end = {"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": usage}}
    stream.feed(f"event: message-end\ndata: {json.dumps(end)}\n\n".encode())
    assert stream.finish().usage == Usage(499, 6, 448, None, None)


def test_cohere_fixtures_record_their_explicit_zero_cache() -> None:
    for name in ("cohere-chat", "cohere-chat-stream"):
        assert CASES[name]["expect"]["response"]["usage"]["cached_input_tokens"] == 0


def test_deepseek_cache_hits_map_onto_cached_input_tokens() -> None:
    # api-docs.deepseek.com (context caching): prompt_tokens = prompt_cache_hit_tokens + miss.
    usage = {
        "prompt_tokens": 100,
        "completion_tokens": 5,
        "prompt_cache_hit_tokens": 64,
        "prompt_cache_miss_tokens": 36,
    }
    assert _usage("openai-chat", {"usage": usage}) == Usage(100, 5, 64, None, None)
    usage["prompt_cache_hit_tokens"] = 0
    assert _usage("openai-chat", {"usage": usage}).cached_input_tokens == 0


def test_bedrock_native_bodies_carry_their_own_counts_without_headers() -> None:
    # Meta Llama and Amazon Titan Text bodies count tokens themselves; behind a gateway that
    # drops the x-amzn-bedrock-*-token-count headers they are the only usage there is.
    llama = {"generation": "4", "prompt_token_count": 22, "generation_token_count": 8, "stop_reason": "stop"}
    assert _usage("bedrock-invoke", llama) == Usage(22, 8, None, None, None)
    titan = {"inputTextTokenCount": 5, "results": [{"tokenCount": 7, "outputText": "hi", "completionReason": "FINISH"}]}
    assert _usage("bedrock-invoke", titan) == Usage(5, 7, None, None, None)


# --------------------------------------------------------------------------- SSE with bare CR

SSE_CASES = [
    name
    for name, case in CASES.items()
    if case["expect"]["request"]["streaming"]
    and case["response"]["headers"].get("content-type", "").startswith("text/event-stream")
]


def _stream_facts(case: dict[str, Any], body: bytes) -> ResponseFacts:
    sp = PARSERS[case["parser"]].stream_parser(case["response"]["headers"])
    for i in range(0, len(body), 7):  # cut everywhere, including between a CR and what follows
        sp.feed(body[i : i + 7])
    return sp.finish()


def test_every_sse_format_has_a_case() -> None:
    assert {CASES[n]["parser"] for n in SSE_CASES} >= {
        "openai-chat", "openai-responses", "anthropic-messages", "gemini", "cohere-v2"
    }  # fmt: skip


@pytest.mark.parametrize("name", SSE_CASES)
def test_a_bare_cr_stream_meters_the_same_as_an_lf_one(name: str) -> None:
    case = CASES[name]
    text = case["response"]["body_text"]
    lf = text.replace("\r\n", "\n").replace("\r", "\n").encode()
    cr = text.replace("\r\n", "\r").replace("\n", "\r").encode()
    assert b"\n" not in cr
    by_lf, by_cr = _stream_facts(case, lf), _stream_facts(case, cr)
    assert by_cr == by_lf
    assert by_cr.usage == Usage(**case["expect"]["response"]["usage"])
    assert by_cr.error_type == case["expect"]["response"]["error_type"]


def test_content_capture_exports_what_the_upstream_reads_of_a_repeated_key() -> None:
    from shadowgate.telemetry.capture import captured_content
    from shadowgate.telemetry.semconv import GEN_AI_INPUT_MESSAGES

    raw = b'{"model": "m", "messages": [{"role": "user", "content": "first"}], "messages": [{"role": "user", "content": "last"}]}'
    exported = json.loads(captured_content(raw, None)[GEN_AI_INPUT_MESSAGES])
    assert exported == [{"role": "user", "parts": [{"type": "text", "content": "last"}]}]
