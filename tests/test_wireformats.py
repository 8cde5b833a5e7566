"""Wire-format parsers against recorded-shape fixtures, plus robustness properties."""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import random
import re
import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from shadowgate.wireformats import NO_TOKEN_OPERATIONS
from shadowgate.wireformats import PARSERS
from shadowgate.wireformats import parse_json_body
from shadowgate.wireformats.base import RequestFacts
from shadowgate.wireformats.base import ResponseFacts
from shadowgate.wireformats.base import Route
from shadowgate.wireformats.framing import MAX_BUFFER
from shadowgate.wireformats.framing import EventStreamDecoder
from shadowgate.wireformats.framing import JSONValuesDecoder
from shadowgate.wireformats.framing import NDJSONDecoder
from shadowgate.wireformats.framing import SSEDecoder

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = sorted((ROOT / "addons" / "shadowgate" / "demo" / "cases").glob("*.json"))
CATALOG = yaml.safe_load((ROOT / "providers.yaml").read_text())["wire_formats"]


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


CASES = {p.stem: load(p) for p in FIXTURES}
STREAM_CASES = [name for name, c in CASES.items() if c["expect"]["request"]["streaming"]]


def route_for(case: dict[str, Any]) -> Route:
    """First endpoint of the case's wire format whose method and path regex match."""
    req = case["request"]
    for endpoint in CATALOG[case["wire_format"]]["endpoints"]:
        if endpoint["method"] == req["method"] and (m := re.fullmatch(endpoint["path"], req["path"])):
            return Route(
                wire_format=case["wire_format"],
                parser=endpoint["parser"],
                operation=endpoint["operation"],
                model_from_path=m.groupdict().get("model"),
                streaming_from_path=bool(endpoint.get("streaming", False)),
            )
    raise AssertionError(f"no endpoint matches {req['method']} {req['path']}")


def response_bytes(case: dict[str, Any]) -> bytes:
    resp = case["response"]
    if resp["body_text"] is not None:
        return resp["body_text"].encode()
    if resp["body_base64"] is not None:
        return base64.b64decode(resp["body_base64"])
    return json.dumps(resp["body_json"]).encode()


def facts_dict(facts: ResponseFacts) -> dict[str, Any]:
    return {
        "model": facts.model,
        "response_id": facts.response_id,
        "finish_reasons": facts.finish_reasons,
        "usage": dataclasses.asdict(facts.usage),
        "error_type": facts.error_type,
    }


def stream_parse(case: dict[str, Any], pieces: list[bytes]) -> ResponseFacts:
    sp = PARSERS[case["parser"]].stream_parser(case["response"]["headers"])
    for piece in pieces:
        sp.feed(piece)
        assert sp.buffered_bytes <= MAX_BUFFER
    return sp.finish()


def whole(case: dict[str, Any]) -> ResponseFacts:
    """Non-streamed responses through parse_response, streamed ones fed in one piece."""
    body = response_bytes(case)
    if case["expect"]["request"]["streaming"]:
        return stream_parse(case, [body])
    return PARSERS[case["parser"]].parse_response(case["response"]["headers"], parse_json_body(body))


def random_splits(data: bytes, rng: random.Random) -> list[bytes]:
    pieces, i = [], 0
    while i < len(data):
        n = rng.choice((1, 2, 3, 7, 16, 64, 500, 4096))
        pieces.append(data[i : i + n])
        i += n
    return pieces


# --------------------------------------------------------------------------- fixtures


def test_fixture_set_is_complete() -> None:
    assert len(CASES) >= 22
    per_parser: dict[str, set[bool]] = {}
    for case in CASES.values():
        per_parser.setdefault(case["parser"], set()).add(case["expect"]["request"]["streaming"])
    assert set(per_parser) == set(PARSERS)
    assert all(sum(c["parser"] == p for c in CASES.values()) >= 2 for p in PARSERS)
    streaming_formats = {
        "openai-chat",
        "openai-responses",
        "anthropic-messages",
        "gemini",
        "bedrock-converse",
        "bedrock-invoke",
        "cohere-v2",
        "ollama",
    }
    assert all(per_parser[p] == {True, False} for p in streaming_formats)


@pytest.mark.parametrize("name", CASES)
def test_fixture_schema(name: str) -> None:
    case = CASES[name]
    assert case["name"] == name
    resp = case["response"]
    assert sum(resp[k] is not None for k in ("body_text", "body_base64", "body_json")) == 1
    assert set(case["expect"]) == {"route", "request", "response"}
    assert set(case["expect"]["response"]) == {"model", "response_id", "finish_reasons", "usage", "error_type"}
    assert set(case["expect"]["response"]["usage"]) == {f.name for f in dataclasses.fields(ResponseFacts().usage)}


@pytest.mark.parametrize("name", CASES)
def test_route(name: str) -> None:
    case = CASES[name]
    route = route_for(case)
    assert route.parser == case["parser"]
    assert {
        "operation": route.operation,
        "model_from_path": route.model_from_path,
        "streaming_from_path": route.streaming_from_path,
    } == case["expect"]["route"]


@pytest.mark.parametrize("name", CASES)
def test_request(name: str) -> None:
    case = CASES[name]
    facts = PARSERS[case["parser"]].parse_request(route_for(case), case["request"]["headers"], case["request"]["body"])
    assert isinstance(facts, RequestFacts)
    assert {"operation": facts.operation, "model": facts.model, "streaming": facts.streaming} == case["expect"][
        "request"
    ]
    # An upload or a batch submission names a file, not text: nothing to estimate tokens from.
    assert facts.prompt_chars > 0 or facts.operation in NO_TOKEN_OPERATIONS


@pytest.mark.parametrize("name", CASES)
def test_response_whole(name: str) -> None:
    case = CASES[name]
    assert facts_dict(whole(case)) == case["expect"]["response"]


@pytest.mark.parametrize("name", CASES)
def test_response_byte_by_byte(name: str) -> None:
    case = CASES[name]
    body = response_bytes(case)
    facts = stream_parse(case, [body[i : i + 1] for i in range(len(body))])
    assert facts_dict(facts) == case["expect"]["response"]
    assert facts == whole(case)  # output_chars too


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("name", CASES)
def test_response_random_splits(name: str, seed: int) -> None:
    case = CASES[name]
    facts = stream_parse(case, random_splits(response_bytes(case), random.Random(f"{name}-{seed}")))
    assert facts == whole(case)
    assert facts_dict(facts) == case["expect"]["response"]


# Generated characters, counted by hand from each fixture's text deltas.
OUTPUT_CHARS = {
    "openai-chat-stream-usage": len("Hi there! How can I help you today?"),
    "openai-chat-stream-no-usage": len("Paris is the capital of France."),
    "openai-chat-cached-reasoning": len("Paris"),
    "openai-responses-stream": len("Bonjour !"),
    "anthropic-messages-stream": len("The user greets me; a short friendly greeting is enough.")
    + len("Hello! How can I help? \u2728"),
    "anthropic-stream-overloaded": len("Once upon a"),
    "gemini-stream-json-array": len('```json\n{"name": "Ada", ')
    + len('"tags": ["math", "c:\\\\code"], "quote": "say \\"hi\\""}\n```'),
    "bedrock-converse-stream": len("Hello! How can I help you today? \u00e9\u00e8"),
    "bedrock-invoke-stream-anthropic": len("Blue, because of Rayleigh scattering."),
    "cohere-chat-stream": len("Bonjour le monde !"),
    "ollama-chat-stream": len("The sky looks blue because air scatters blue light most."),
    "ollama-chat": len("8") + len("Spiders are arachnids; arachnids have eight legs."),
    "openai-embeddings": 0,
}


@pytest.mark.parametrize("name", OUTPUT_CHARS)
def test_output_chars(name: str) -> None:
    assert whole(CASES[name]).output_chars == OUTPUT_CHARS[name]


PROMPT_CHARS = {
    "openai-chat-stream-usage": len("Say hi"),
    "openai-chat-stream-no-usage": len("Answer in one sentence.") + len("What is the capital of France?"),
    "openai-responses-stream": len("Be brief.") + len("Say hello in French."),
    "openai-embeddings": len("The food was delicious and the waiter was friendly.") + len("I would not come back."),
    "anthropic-vertex-rawpredict": len("Name three primary colours."),
    "gemini-stream-sse": len("Who won Euro 2024?"),
    "gemini-embed-content": len("What is the meaning of life?"),
    "bedrock-converse-stream": len("Hi"),
    "cohere-embed": len("hello") + len("goodbye"),
    "ollama-chat": len("Answer with a number.") + len("How many legs does a spider have?"),
}


@pytest.mark.parametrize("name", PROMPT_CHARS)
def test_prompt_chars(name: str) -> None:
    case = CASES[name]
    facts = PARSERS[case["parser"]].parse_request(route_for(case), {}, case["request"]["body"])
    assert facts.prompt_chars == PROMPT_CHARS[name]


@pytest.mark.parametrize("name", STREAM_CASES)
def test_truncated_streams_never_raise(name: str) -> None:
    case = CASES[name]
    body = response_bytes(case)
    for cut in range(0, len(body), max(1, len(body) // 40)):
        facts = stream_parse(case, [body[:cut]])
        assert isinstance(facts, ResponseFacts)


# --------------------------------------------------------------------------- semantics beyond fixtures


def sse(*objs: Any) -> bytes:
    return b"".join(b"data: " + json.dumps(o).encode() + b"\n\n" for o in objs)


def run_stream(parser: str, content_type: str, body: bytes, step: int = 3) -> ResponseFacts:
    sp = PARSERS[parser].stream_parser({"Content-Type": content_type})
    for i in range(0, len(body), step):
        sp.feed(body[i : i + step])
    return sp.finish()


def test_openai_running_usage_is_replaced_not_summed() -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 1}
    chunks = [
        {"id": "x", "choices": [{"index": 0, "delta": {"content": "a"}}], "usage": dict(usage, completion_tokens=n)}
        for n in (1, 2, 3)
    ]
    facts = run_stream("openai-chat", "text/event-stream", sse(*chunks))
    assert (facts.usage.input_tokens, facts.usage.output_tokens) == (5, 3)


def test_openai_multiple_choices_finish_in_index_order() -> None:
    chunks = [
        {"choices": [{"index": 1, "delta": {}, "finish_reason": "length"}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    ]
    assert run_stream("openai-chat", "text/event-stream", sse(*chunks)).finish_reasons == ["stop", "length"]


def test_openai_error_inside_stream() -> None:
    body = sse(
        {"id": "c", "choices": [{"index": 0, "delta": {"content": "hi"}}]},
        {"error": {"message": "boom", "type": "server_error", "code": None}},
    )
    assert run_stream("openai-chat", "text/event-stream", body).error_type == "server_error"


def test_sse_event_error_without_json_still_flags() -> None:
    body = b"event: error\ndata: upstream exploded\n\n"
    for parser in ("openai-chat", "openai-responses", "cohere-v2"):
        assert run_stream(parser, "text/event-stream", body).error_type == "error"


def test_anthropic_old_style_message_delta_keeps_start_input() -> None:
    body = sse(
        {
            "type": "message_start",
            "message": {
                "id": "m",
                "model": "c",
                "usage": {
                    "input_tokens": 10,
                    "cache_read_input_tokens": 5,
                    "cache_creation_input_tokens": 2,
                    "output_tokens": 1,
                },
            },
        },
        {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 40}},
    )
    facts = run_stream("anthropic-messages", "text/event-stream", body)
    assert dataclasses.astuple(facts.usage) == (17, 40, 5, 2, None)
    assert facts.finish_reasons == ["max_tokens"]


def test_responses_failed_and_incomplete() -> None:
    failed = {
        "type": "response.failed",
        "response": {"id": "r", "status": "failed", "error": {"code": "server_error", "message": "x"}},
    }
    assert run_stream("openai-responses", "text/event-stream", sse(failed)).error_type == "server_error"
    body = {
        "id": "r",
        "object": "response",
        "status": "incomplete",
        "incomplete_details": {"reason": "max_output_tokens"},
        "output": [],
    }
    assert PARSERS["openai-responses"].parse_response({}, body).finish_reasons == ["max_output_tokens"]


def test_gemini_error_inside_json_array_stream() -> None:
    body = b'[{\n  "error": {\n    "code": 503,\n    "message": "overloaded",\n    "status": "UNAVAILABLE"\n  }\n}\n]'
    assert run_stream("gemini", "application/json", body, step=1).error_type == "UNAVAILABLE"


def test_ollama_generate_and_embed() -> None:
    lines = [
        {"model": "m", "response": "Hel", "done": False},
        {
            "model": "m",
            "response": "lo",
            "done": True,
            "done_reason": "length",
            "prompt_eval_count": 4,
            "eval_count": 2,
        },
    ]
    body = b"".join(json.dumps(x).encode() + b"\n" for x in lines)
    facts = run_stream("ollama", "application/x-ndjson", body)
    assert (facts.output_chars, facts.finish_reasons, facts.usage.output_tokens) == (5, ["length"], 2)
    embed = PARSERS["ollama"].parse_response({}, {"model": "m", "embeddings": [[0.1]], "prompt_eval_count": 3})
    assert (embed.usage.input_tokens, embed.usage.output_tokens) == (3, 0)
    assert PARSERS["ollama"].parse_response({}, {"error": "model 'x' not found"}).error_type == "error"
    route = Route("ollama", "ollama", "embeddings")
    assert PARSERS["ollama"].parse_request(route, {}, {"model": "m", "input": "hi"}).streaming is False


def test_bedrock_errors_from_headers() -> None:
    headers = {
        "Content-Type": "application/json",
        "x-amzn-ErrorType": "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/",
    }
    body = {"message": "Too many requests, please wait before trying again."}
    for parser in ("bedrock-converse", "bedrock-invoke"):
        assert PARSERS[parser].parse_response(headers, body).error_type == "ThrottlingException"
    assert PARSERS["bedrock-converse"].parse_response({}, body).error_type == "error"


# An AWS event-stream encoder, to build streams the fixtures do not cover.
def es_message(headers: dict[str, str], payload: bytes) -> bytes:
    raw_headers = b"".join(
        bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v.encode())) + v.encode()
        for k, v in headers.items()
    )
    prelude = struct.pack(">II", 12 + len(raw_headers) + len(payload) + 4, len(raw_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    message = prelude + raw_headers + payload
    return message + struct.pack(">I", zlib.crc32(message))


def es_chunk(obj: Any) -> bytes:
    payload = json.dumps({"bytes": base64.b64encode(json.dumps(obj).encode()).decode(), "p": "abc"}).encode()
    return es_message({":event-type": "chunk", ":content-type": "application/json", ":message-type": "event"}, payload)


def test_bedrock_invoke_stream_uses_invocation_metrics_for_native_bodies() -> None:
    body = es_chunk({"generation": "Hello", "prompt_token_count": 9, "generation_token_count": 1, "stop_reason": None})
    body += es_chunk(
        {
            "generation": " there",
            "prompt_token_count": None,
            "generation_token_count": 2,
            "stop_reason": "stop",
            "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": 9,
                "outputTokenCount": 2,
                "invocationLatency": 100,
                "firstByteLatency": 50,
            },
        }
    )
    facts = run_stream("bedrock-invoke", "application/vnd.amazon.eventstream", body, step=5)
    assert (facts.usage.input_tokens, facts.usage.output_tokens) == (9, 2)
    assert (facts.output_chars, facts.finish_reasons) == (11, ["stop"])


def test_bedrock_invoke_nova_stream_delegates_to_converse() -> None:
    body = es_chunk({"messageStart": {"role": "assistant"}})
    body += es_chunk({"contentBlockDelta": {"delta": {"text": "Hi!"}, "contentBlockIndex": 0}})
    body += es_chunk({"messageStop": {"stopReason": "end_turn"}})
    body += es_chunk(
        {
            "metadata": {"usage": {"inputTokens": 3, "outputTokens": 2, "cacheReadInputTokens": 4}},
            "amazon-bedrock-invocationMetrics": {"inputTokenCount": 3, "outputTokenCount": 2},
        }
    )
    facts = run_stream("bedrock-invoke", "application/vnd.amazon.eventstream", body)
    assert dataclasses.astuple(facts.usage) == (7, 2, 4, None, None)
    assert (facts.output_chars, facts.finish_reasons) == (3, ["end_turn"])


def test_event_stream_resyncs_after_garbage_and_bad_crc() -> None:
    good = es_chunk({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}})
    corrupt = bytearray(good)
    corrupt[-10] ^= 0xFF  # payload byte: message CRC fails, message skipped
    dec = EventStreamDecoder()
    frames = dec.feed(b"\x00\x01garbage-bytes\xff" + bytes(corrupt) + good)
    assert len(frames) == 1 and frames[0].event == "chunk"
    assert dec.buffered_bytes == 0


def test_event_stream_skips_oversized_message_without_buffering() -> None:
    big = es_message({":event-type": "chunk", ":message-type": "event"}, b"x" * 5000)
    small = es_message({":event-type": "chunk", ":message-type": "event"}, b'{"ok": 1}')
    dec = EventStreamDecoder(max_buffer=1000)
    frames = []
    for i in range(0, len(big + small), 700):
        frames += dec.feed((big + small)[i : i + 700])
        assert dec.buffered_bytes <= 1000
    assert [f.data for f in frames] == [{"ok": 1}]


def test_event_stream_gives_up_on_endless_garbage() -> None:
    dec = EventStreamDecoder(max_resync=1000)
    assert dec.feed(bytes(range(256)) * 20) == []
    assert dec.buffered_bytes == 0
    assert dec.feed(es_chunk({"type": "message_stop"})) == []  # broken streams stay broken


def test_event_stream_exception_and_error_frames() -> None:
    exc = es_message(
        {":exception-type": "modelStreamErrorException", ":message-type": "exception"}, b'{"message": "bad"}'
    )
    err = es_message({":error-code": "InternalFailure", ":message-type": "error"}, b"")
    frames = EventStreamDecoder().feed(exc + err)
    assert [f.error for f in frames] == ["modelStreamErrorException", "InternalFailure"]


# --------------------------------------------------------------------------- framing details


def test_sse_line_endings_fields_comments_and_done() -> None:
    body = (
        b": keep-alive\r\n"
        b'event: a\r\ndata:{"x":\r\ndata: 1}\r\n\r\n'  # no space after colon, multi-line data
        b"retry: 100\nid: 7\n\n"  # no data: nothing dispatched
        b"data: [DONE]\n\n"
        b"data: not json\n\n"
        b'data: {"y": 2}'
    )  # unterminated at EOF: still delivered
    dec = SSEDecoder()
    frames = [f for i in range(len(body)) for f in dec.feed(body[i : i + 1])] + dec.finish()
    assert [(f.event, f.data) for f in frames] == [("a", {"x": 1}), (None, None), (None, {"y": 2})]


def test_sse_utf8_split_across_chunks() -> None:
    body = 'data: {"t": "h\u00e9llo \u2603 \U0001f600"}\n\n'.encode()
    dec = SSEDecoder()
    frames = [f for b in body for f in dec.feed(bytes([b]))]
    assert frames[0].data == {"t": "h\u00e9llo \u2603 \U0001f600"}


@pytest.mark.parametrize("decoder", [SSEDecoder, NDJSONDecoder])
def test_line_decoders_drop_overlong_lines_and_resync(decoder: type[SSEDecoder | NDJSONDecoder]) -> None:
    dec = decoder(max_buffer=1024)
    line = b'data: {"ok": true}\n\n' if decoder is SSEDecoder else b'{"ok": true}\n'
    frames = dec.feed(b"data: " + b"x" * 600)
    frames += dec.feed(b"y" * 600)  # over the cap: dropped
    assert dec.buffered_bytes <= 1024
    frames += dec.feed(b"z" * 5000)
    assert dec.buffered_bytes <= 1024
    frames += dec.feed(b"\n\n" + line)
    frames += dec.finish()
    assert [f.data for f in frames] == [{"ok": True}]


def test_default_cap_holds_for_a_huge_unterminated_line() -> None:
    sp = PARSERS["openai-chat"].stream_parser({"content-type": "text/event-stream"})
    for _ in range(40):
        sp.feed(b"x" * 100_000)
        assert sp.buffered_bytes <= MAX_BUFFER
    sp.feed(b"\n\n" + sse({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    assert sp.finish().finish_reasons == ["stop"]


def test_json_values_decoder_handles_objects_arrays_and_overflow() -> None:
    dec = JSONValuesDecoder(max_buffer=64)
    frames = dec.feed(b'{"a": "}{\\"[" }  {"b": [1, {"c": 2}]}[{"d": "' + b"x" * 100 + b'"}, {"e": 3}]')
    assert [f.data for f in frames] == [{"a": '}{"['}, {"b": [1, {"c": 2}]}, {"e": 3}]
    assert dec.buffered_bytes == 0


def test_json_values_escape_split_at_chunk_boundary() -> None:
    dec = JSONValuesDecoder()
    frames = dec.feed(b'[{"t": "a\\') + dec.feed(b'"}"}]')
    assert [f.data for f in frames] == [{"t": 'a"}'}]


def test_parse_json_body() -> None:
    assert parse_json_body(b'{"a": 1}') == {"a": 1}
    assert parse_json_body(b"\xef\xbb\xbf[1]") == [1]
    for raw in (b"", b"   ", b"{", b"\xff\xfe{}", None, "text", 5):
        assert parse_json_body(raw) is None  # type: ignore[arg-type]
    # Bytes that are not UTF-8 are read as lenient readers (Node) read them (red-team F14).
    assert parse_json_body(b'{"a": "\xff"}') == {"a": "\ufffd"}
    assert parse_json_body(b"[" * 100_000) is None


# --------------------------------------------------------------------------- looks_like

POSITIVE = {
    "openai-evals": [{"data_source": {"type": "completions", "model": "gpt-4.1"}}],
    "anthropic-batches": [{"requests": [{"custom_id": "a", "params": {"model": "claude", "messages": []}}]}],
    "openai-files": [{"input_file_id": "file-1", "endpoint": "/v1/chat/completions", "completion_window": "24h"}],
    "openai-assistants": [{"assistant_id": "asst_1"}, {"assistant_id": "asst_1", "thread": {"messages": []}}],
    "openai-speech": [{"model": "tts-1", "input": "hi", "voice": "alloy"}],
    "openai-media": [{"model": "dall-e-3", "prompt": "a cat"}, {"prompt": "a cat", "n": 2}],
    "openai-transcription": [],  # multipart, never JSON: routed by its path only
    "openai-chat": [{"model": "gpt-4o", "messages": []}, {"model": "gpt-3.5-turbo-instruct", "prompt": "hi"}],
    "openai-responses": [
        {"model": "gpt-4.1", "input": "hi"},
        {"model": "o3", "input": [{"role": "user", "content": "x"}]},
    ],
    "openai-embeddings": [{"model": "text-embedding-3-small", "input": ["a", "b"]}, {"model": "e", "input": [[1, 2]]}],
    "anthropic-messages": [{"model": "claude", "messages": [], "max_tokens": 10}],
    "gemini": [{"contents": [{"parts": [{"text": "hi"}]}]}],
    "bedrock-converse": [{"messages": [{"role": "user", "content": [{"text": "hi"}]}]}],
    "bedrock-invoke": [
        {"anthropic_version": "bedrock-2023-05-31", "messages": [], "max_tokens": 1},
        {"schemaVersion": "messages-v1", "messages": []},
        {"inputText": "hi"},
        {"prompt": "<|begin_of_text|>hi", "max_gen_len": 64},
    ],
    "cohere-v2": [
        {"model": "command-a-03-2025", "messages": []},
        {"model": "embed-v4.0", "texts": ["a"], "input_type": "search_query"},
    ],
    "ollama": [{"model": "llama3.2", "messages": []}, {"model": "llama3.2", "prompt": "hi"}],
}
NEGATIVE = {
    "openai-evals": [{"data_source": "x"}, {"model": "gpt-4o", "messages": []}],
    "anthropic-batches": [{"requests": "x"}, {"requests": ["a"]}, {"model": "claude", "messages": []}],
    "openai-files": [{"input_file_id": "file-1"}, {"purpose": "batch"}],
    "openai-assistants": [{"model": "gpt-4o", "messages": []}, {"assistant_id": 1}],
    "openai-speech": [{"model": "tts-1", "input": "hi"}, {"voice": "alloy", "input": "hi"}],
    "openai-media": [{"model": "dall-e-3"}, {"prompt": ["a cat"]}],
    "openai-transcription": [{"model": "whisper-1", "prompt": "a cat"}],
    "openai-chat": [{"model": "gpt-4o"}, {"messages": []}, {"model": 4, "messages": []}, {"model": "m", "prompt": []}],
    "openai-responses": [{"model": "m"}, {"model": "m", "input": [1, 2]}, {"input": "hi"}],
    "openai-embeddings": [{"model": "m"}, {"model": "m", "input": [{"role": "user"}]}, {"model": "m", "input": []}],
    "anthropic-messages": [
        {"model": "c", "messages": []},
        {"model": "c", "messages": [], "max_tokens": "10"},
        {"model": "c", "messages": {}, "max_tokens": 10},
    ],
    "gemini": [{"contents": "hi"}, {"contents": ["hi"]}, {"model": "g", "messages": []}],
    "bedrock-converse": [
        {"model": "x", "messages": [{"content": [{"text": "hi"}]}]},
        {"messages": [{"role": "user", "content": "hi"}]},
        {"messages": []},
    ],
    "bedrock-invoke": [
        {"anthropic_version": "vertex-2023-10-16", "messages": []},
        {"model": "m", "inputText": "x"},
        {"prompt": "hi", "max_tokens": 5},
    ],
    "cohere-v2": [{"model": "m"}, {"messages": []}, {"model": "m", "texts": ["a"]}],
    "ollama": [{"model": "m"}, {"model": "m", "prompt": ["a"]}, {"prompt": "hi"}],
}
GARBAGE: list[Any] = [
    None,
    True,
    0,
    1.5,
    "model",
    b"bytes",
    [],
    [{"model": "m", "messages": []}],
    {},
    {"model": None, "messages": None, "contents": None, "input": None},
]


@pytest.mark.parametrize("parser_id", PARSERS)
def test_looks_like(parser_id: str) -> None:
    parser = PARSERS[parser_id]
    assert all(parser.looks_like(b) is True for b in POSITIVE[parser_id])
    assert all(parser.looks_like(b) is False for b in NEGATIVE[parser_id] + GARBAGE)


def _fingerprintable(case: dict) -> bool:
    """Requests whose body alone says what they are; Azure/Vertex put the model in the path and
    Gemini's embedContent has no contents, so the path decides those, not looks_like."""
    body = case["request"]["body"]
    if body is None or case["expect"]["route"]["operation"] == "count_tokens":
        return False  # a multipart upload; a token count has no max_tokens: the path decides
    body_model_parsers = {"openai-chat", "openai-responses", "openai-embeddings", "anthropic-messages", "ollama"}
    if case["parser"] in body_model_parsers:
        return "model" in body
    if case["parser"] == "gemini":
        return "contents" in body
    return True


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if _fingerprintable(c)])
def test_looks_like_accepts_fixture_requests_with_a_model_in_the_body(name: str) -> None:
    case = CASES[name]
    assert PARSERS[case["parser"]].looks_like(case["request"]["body"])


# --------------------------------------------------------------------------- robustness (hypothesis)

KEYS = st.sampled_from(
    [
        "model",
        "messages",
        "content",
        "text",
        "choices",
        "delta",
        "message",
        "usage",
        "prompt_tokens",
        "completion_tokens",
        "input_tokens",
        "output_tokens",
        "type",
        "error",
        "code",
        "status",
        "candidates",
        "parts",
        "usageMetadata",
        "promptTokenCount",
        "finish_reason",
        "finishReason",
        "stop_reason",
        "index",
        "response",
        "output",
        "id",
        "done",
        "eval_count",
        "tokens",
        "billed_units",
        "bytes",
        "stopReason",
        "amazon-bedrock-invocationMetrics",
        "inputTokens",
        "tool_calls",
        "function",
        "arguments",
        "prompt",
        "input",
        "system",
        "contents",
        "stream",
        "max_tokens",
        "thinking",
        "incomplete_details",
        "embeddings",
    ]
)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(
        [
            "message",
            "message_start",
            "message_delta",
            "content_block_delta",
            "error",
            "chunk",
            "response.completed",
            "response.output_text.delta",
            "content-delta",
            "message-end",
            "stop",
        ]
    ),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS | st.text(max_size=8), children, max_size=6),
    max_leaves=30,
)
ROUTES = st.builds(
    Route,
    wire_format=st.text(max_size=5),
    parser=st.text(max_size=5),
    operation=st.sampled_from(["chat", "text_completion", "embeddings", "generate_content"]),
    model_from_path=st.none() | st.text(max_size=30),
    streaming_from_path=st.booleans(),
)
HEADERS = st.dictionaries(
    st.sampled_from(
        [
            "content-type",
            "Content-Type",
            "x-amzn-errortype",
            "X-Amzn-Bedrock-Input-Token-Count",
            "x-amzn-bedrock-output-token-count",
        ]
    ),
    st.sampled_from(
        [
            "text/event-stream",
            "application/json",
            "application/x-ndjson",
            "application/vnd.amazon.eventstream",
            "12",
            "-1",
            "x:y",
            "",
        ]
    )
    | st.text(max_size=10),
    max_size=3,
)
CONTENT_TYPES = [
    "text/event-stream",
    "application/x-ndjson",
    "application/json",
    "application/vnd.amazon.eventstream",
    "text/plain",
    "",
]
# scripts/fuzz.py raises this to run the same properties far longer than CI does.
FUZZ_SCALE = int(os.environ.get("SG_FUZZ_SCALE", "1"))
ROBUST = settings(max_examples=150 * FUZZ_SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@ROBUST
@given(body=JSON)
def test_looks_like_never_raises(body: Any) -> None:
    for parser in PARSERS.values():
        assert parser.looks_like(body) in (True, False)


@ROBUST
@given(route=ROUTES, headers=HEADERS, body=JSON)
def test_parse_request_never_raises(route: Route, headers: dict[str, str], body: Any) -> None:
    for parser in PARSERS.values():
        facts = parser.parse_request(route, headers, body)
        assert facts.operation == route.operation and facts.prompt_chars >= 0


@ROBUST
@given(headers=HEADERS, body=JSON)
def test_parse_response_never_raises(headers: dict[str, str], body: Any) -> None:
    for parser in PARSERS.values():
        facts = parser.parse_response(headers, body)
        assert isinstance(facts, ResponseFacts) and facts.output_chars >= 0


def as_stream_bytes(values: list[Any], framing: str) -> bytes:
    if framing == "text/event-stream":
        return b"".join(b"event: x\ndata: " + json.dumps(v).encode() + b"\n\n" for v in values)
    if framing == "application/vnd.amazon.eventstream":
        return b"".join(
            es_message({":event-type": "chunk", ":message-type": "event"}, json.dumps(v).encode()) + es_chunk(v)
            for v in values
        )
    if framing == "application/json":
        return json.dumps(values).encode()
    return b"".join(json.dumps(v).encode() + b"\n" for v in values)


@ROBUST
@given(values=st.lists(JSON, max_size=6), ctype=st.sampled_from(CONTENT_TYPES), data=st.data())
def test_stream_parsers_survive_arbitrary_json_events(values: list[Any], ctype: str, data: st.DataObject) -> None:
    raw = as_stream_bytes(values, ctype)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=8)))
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    for parser in PARSERS.values():
        sp = parser.stream_parser({"content-type": ctype})
        for piece in pieces:
            sp.feed(piece)
            assert sp.buffered_bytes <= MAX_BUFFER
        assert isinstance(sp.finish(), ResponseFacts)


@ROBUST
@given(chunks=st.lists(st.binary(max_size=300), max_size=10), ctype=st.sampled_from(CONTENT_TYPES))
def test_stream_parsers_survive_arbitrary_bytes(chunks: list[bytes], ctype: str) -> None:
    for parser in PARSERS.values():
        sp = parser.stream_parser({"content-type": ctype})
        for chunk in chunks:
            sp.feed(chunk)
            assert sp.buffered_bytes <= MAX_BUFFER
        assert isinstance(sp.finish(), ResponseFacts)


@ROBUST
@given(name=st.sampled_from(STREAM_CASES), data=st.data())
def test_stream_parsers_survive_corrupted_fixtures(name: str, data: st.DataObject) -> None:
    case = CASES[name]
    raw = bytearray(response_bytes(case))
    for pos in data.draw(st.lists(st.integers(0, len(raw) - 1), max_size=5)):
        raw[pos] = data.draw(st.integers(0, 255))
    facts = stream_parse(case, random_splits(bytes(raw), random.Random(len(raw))))
    assert isinstance(facts, ResponseFacts)


def test_feed_ignores_non_bytes() -> None:
    for parser in PARSERS.values():
        sp = parser.stream_parser(None)  # type: ignore[arg-type]
        sp.feed(None)  # type: ignore[arg-type]
        sp.feed("text")  # type: ignore[arg-type]
        assert isinstance(sp.finish(), ResponseFacts)
