"""End to end: real mitmdump, fake providers, real clients; the exact rows in DuckDB."""

from __future__ import annotations

import json
import re
import time

import pytest

from shadowgate.demo.fakeupstream import load_cases
from shadowgate.storage.pricing import Pricing
from shadowgate.wireformats import NO_TOKEN_OPERATIONS

CASES = load_cases()
TOKEN_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_creation_input_tokens",
    "reasoning_tokens",
)


def user_for(name: str) -> str:
    return "u_" + re.sub(r"[^a-z0-9]", "_", name.lower())


def case_host(case: dict) -> str:
    # Ollama fixtures name a LAN server (localhost:11434); through the proxy the same API is
    # Ollama Cloud on ollama.com, which the catalog lists.
    return "ollama.com" if case["host"].startswith("localhost") else case["host"]


def send_case(client, case: dict, **headers: str):
    req = case["request"]
    url = f"https://{case_host(case)}{req['path']}" + (f"?{req['query']}" if req.get("query") else "")
    body = req.get("body")
    all_headers = {**req.get("headers", {}), "x-fake-case": case["name"], **headers}
    return client.request(
        req["method"], url, content=json.dumps(body).encode() if body is not None else b"", headers=all_headers
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_wire_format_fixture_is_metered_exactly(proxy, name):
    case = CASES[name]
    user = user_for(name)
    with proxy.client(user) as client:
        response = send_case(client, case)
    assert response.status_code == case["response"]["status"]
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    expect = case["expect"]
    assert row["host"] == case_host(case)
    assert row["wire_format"] == case["wire_format"]
    assert row["operation"] == expect["request"]["operation"]
    assert row["model"] == expect["request"]["model"]
    assert row["streaming"] == expect["request"]["streaming"]
    assert row["status_code"] == case["response"]["status"]
    assert row["response_model"] == expect["response"]["model"]
    assert row["inspected"] is True
    assert row["decision"] == "allow"
    usage = expect["response"]["usage"]
    # An upload or a token count spends nothing; a batch of requests spends once it runs, and is
    # charged its upper bound when it is accepted (red-team F41; one naming a file was charged
    # when the file was uploaded).
    operation = expect["request"]["operation"]
    body = case["request"].get("body") or {}
    source = (body.get("data_source") or {}).get("source") or {}
    # A batch naming its input file (a batch's input_file_id, an eval run's file source) has no bound the call shows.
    inline_batch = operation == "create_batch" and "input_file_id" not in body and source.get("type") != "file_id"
    spends_tokens = operation not in NO_TOKEN_OPERATIONS or inline_batch
    if (
        case["response"]["status"] == 200
        and spends_tokens
        and all(usage.get(f) is None for f in ("input_tokens", "output_tokens"))
    ):
        assert row["usage_estimated"] is True
        assert row["input_tokens"] > 0
    else:
        assert row["usage_estimated"] is False
        for field in TOKEN_FIELDS:
            assert row[field] == usage.get(field), field
    assert row["error_type"] == expect["response"].get("error_type")
    assert row["request_bytes"] == len(response.request.content)
    assert row["response_bytes"] > 0
    assert row["latency_ms"] > 0
    assert row["proxy_overhead_us"] >= 0


def test_openai_sdk_chat_row_is_exact(proxy):
    import openai

    with proxy.sdk_http("sdk_alice") as http:
        client = openai.OpenAI(api_key="sk-proj-alice-secret-key-123", http_client=http)
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    [row] = proxy.rows("user_name = 'sdk_alice'", expect=1)
    assert row["provider"] == "openai" and row["category"] == "api"
    assert row["model"] == "gpt-4o-mini"
    assert row["response_model"] == completion.model
    assert row["input_tokens"] == completion.usage.prompt_tokens
    assert row["output_tokens"] == completion.usage.completion_tokens
    details = completion.usage.prompt_tokens_details
    assert row["cached_input_tokens"] == (details.cached_tokens if details else None)
    expected = Pricing().quote(
        "openai", completion.model, row["input_tokens"], row["output_tokens"], row["cached_input_tokens"]
    )
    assert expected is not None and row["cost_usd"] == pytest.approx(expected.cost_usd)
    # The key is never stored: only its keyed fingerprint and its kind.
    assert row["key_fingerprint"].startswith("hmac:") and "alice-secret" not in row["key_fingerprint"]
    assert row["key_kind"] == "openai-project"
    assert row["path"] == "/v1/chat/completions"


def test_openai_sdk_stream_reaches_client_chunk_by_chunk(proxy):
    import openai

    delay = 0.25
    with proxy.sdk_http("sdk_stream", headers={"x-fake-delay-ms": str(int(delay * 1000))}) as http:
        client = openai.OpenAI(api_key="sk-test", http_client=http)
        started = time.monotonic()
        arrivals = []
        for chunk in client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        ):
            arrivals.append(time.monotonic() - started)
            if chunk.usage:
                usage = chunk.usage
    assert len(arrivals) >= 3
    total = arrivals[-1]
    # The first chunk arrives long before the stream ends: nothing was buffered.
    assert arrivals[0] < total - delay * (len(arrivals) - 2) * 0.8
    [row] = proxy.rows("user_name = 'sdk_stream'", expect=1)
    assert row["streaming"] is True
    assert row["input_tokens"] == usage.prompt_tokens and row["output_tokens"] == usage.completion_tokens
    assert row["usage_estimated"] is False
    assert 0 < row["ttft_ms"] < row["latency_ms"]
    assert row["latency_ms"] - row["ttft_ms"] >= delay * 1000 * (len(arrivals) - 2) * 0.8


def test_stream_without_usage_is_estimated_and_flagged(proxy_with):
    import openai

    # With shadowgate_stream_usage=ask (the default) the proxy asks OpenAI for the usage
    # (tests/adversarial/test_stream_usage.py); switched off, the usage is estimated.
    proxy = proxy_with(None, shadowgate_stream_usage="off")
    with proxy.sdk_http("sdk_nousage") as http:
        client = openai.OpenAI(api_key="sk-test", http_client=http)
        text = "".join(
            c.choices[0].delta.content or ""
            for c in client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello politely"}], stream=True
            )
            if c.choices
        )
    [row] = proxy.rows("user_name = 'sdk_nousage'", expect=1)
    assert row["usage_estimated"] is True
    assert row["input_tokens"] == -(-len("Say hello politely") // 4)
    assert row["output_tokens"] == -(-len(text) // 4)


def test_anthropic_sdk_stream_and_cache_tokens(proxy):
    import anthropic

    with proxy.sdk_http("sdk_claude") as http:
        client = anthropic.Anthropic(api_key="sk-ant-api03-test", http_client=http)
        message = client.messages.create(
            model="claude-sonnet-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        )
        with client.messages.stream(
            model="claude-sonnet-5", max_tokens=100, messages=[{"role": "user", "content": "hi"}]
        ) as stream:
            final = stream.get_final_message()
    rows = proxy.rows("user_name = 'sdk_claude'", expect=2)
    assert [r["streaming"] for r in rows] == [False, True]
    for row, msg in zip(rows, (message, final)):
        u = msg.usage
        cache_read = u.cache_read_input_tokens or 0
        cache_write = u.cache_creation_input_tokens or 0
        assert row["provider"] == "anthropic" and row["wire_format"] == "anthropic-messages"
        assert row["input_tokens"] == u.input_tokens + cache_read + cache_write
        assert row["output_tokens"] == u.output_tokens
        assert row["cached_input_tokens"] == (
            u.cache_read_input_tokens if u.cache_read_input_tokens is not None else None
        )
        assert row["key_kind"] == "anthropic-api"
        assert row["cost_usd"] is not None and row["cost_usd"] > 0


def test_google_genai_sdk(proxy):
    from google import genai
    from google.genai import types

    options = types.HttpOptions(client_args={"proxy": proxy.url("sdk_gemini"), "verify": proxy.ssl_context()})
    client = genai.Client(api_key="AIza-test-key", http_options=options)
    result = client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    rows = proxy.rows("user_name = 'sdk_gemini'", expect=2)
    assert [r["streaming"] for r in rows] == [False, True]
    meta = result.usage_metadata
    assert rows[0]["provider"] == "gemini-api" and rows[0]["model"] == "gemini-2.5-flash"
    # Gemini bills tool-use prompt tokens as input too, outside promptTokenCount.
    assert rows[0]["input_tokens"] == meta.prompt_token_count + (meta.tool_use_prompt_token_count or 0)
    assert rows[0]["output_tokens"] == (meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)
    assert rows[0]["key_kind"] == "google-api-key"
    last = [c.usage_metadata for c in chunks if c.usage_metadata][-1]
    assert rows[1]["input_tokens"] == last.prompt_token_count + (last.tool_use_prompt_token_count or 0)


def test_gzip_stream_is_decoded_for_metering_and_untouched_for_the_client(proxy):
    case = next(
        c
        for c in CASES.values()
        if c["wire_format"] == "openai-chat" and "include_usage" in json.dumps(c["request"].get("body"))
    )
    with proxy.client("gzip_stream") as client:
        response = send_case(client, case, **{"x-fake-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert "data:" in response.text  # httpx decoded it: the bytes reached the client intact
    [row] = proxy.rows("user_name = 'gzip_stream'", expect=1)
    assert row["usage_estimated"] is False
    assert row["input_tokens"] == case["expect"]["response"]["usage"]["input_tokens"]


def test_grpc_usage_is_read_from_frames_split_anywhere_and_a_huge_frame_is_walked(monkeypatch):
    from shadowgate.stages import meter

    def frame(message: bytes) -> bytes:
        return b"\x00" + len(message).to_bytes(4, "big") + message

    usage = bytes([0x08, 12, 0x10, 30, 0x18, 50])  # prompt 12, candidates 30, total 50
    answer = frame(b"\x0a\x03abc") + frame(bytes([0x1A, len(usage)]) + usage)
    stream = meter.GrpcUsageStream("/google.ai.generativelanguage.v1beta.GenerativeService/StreamGenerateContent")
    for i in range(len(answer)):
        stream.feed(answer[i : i + 1])
    assert (stream.finish().usage.input_tokens, stream.finish().usage.output_tokens) == (12, 38)
    vertex = frame(b"\x0a\x03abc") + frame(bytes([0x22, len(usage)]) + usage)  # field 4 on Vertex
    on_vertex = meter.GrpcUsageStream("/google.cloud.aiplatform.v1.PredictionService/GenerateContent")
    on_vertex.feed(vertex)
    assert on_vertex.finish().usage.output_tokens == 38
    # A frame over GRPC_FRAME_MAX is not kept but walked field by field, its candidates skipped
    # (red-team F106), split anywhere; a compressed one cannot be walked and is skipped.
    monkeypatch.setattr(meter, "GRPC_FRAME_MAX", 4)
    candidates = bytes([0x0A, 0x80, 0x01]) + b"c" * 128 + bytes([0x10, 0x96, 0x01, 0x2D]) + b"abcd"
    large = frame(candidates + bytes([0x22, len(usage)]) + usage) + frame(b"\x0a\x03abc")
    for step in (1, 3, len(large)):
        walking = meter.GrpcUsageStream("/google.cloud.aiplatform.v1.PredictionService/GenerateContent")
        for i in range(0, len(large), step):
            walking.feed(large[i : i + step])
        assert (walking.finish().usage.input_tokens, walking.finish().usage.output_tokens) == (12, 38), step
    compressed = meter.GrpcUsageStream("/google.cloud.aiplatform.v1.PredictionService/GenerateContent")
    compressed.feed(b"\x01" + frame(bytes([0x22, len(usage)]) + usage)[1:])
    assert compressed.finish().usage.is_empty()


def test_the_usage_of_an_answer_too_large_to_parse_is_read_from_its_end():
    from shadowgate.stages import meter

    answer = {"id": "c", "model": "gpt-4.1", "choices": [{"index": 0, "message": {"content": 'say "usage": {}'},
              "logprobs": {"content": [{"token": "x", "logprob": -1.0}] * 20000}}],
              "usage": {"prompt_tokens": 20, "completion_tokens": 16000, "total_tokens": 16020}}  # fmt: skip
    data = json.dumps(answer).encode()
    tail = meter.TailUsage("openai-chat", {}, 16000)
    for i in range(0, len(data), 4096):
        tail.feed(data[i : i + 4096])
    assert len(tail.tail) <= 2 * meter.USAGE_TAIL_BYTES
    usage = tail.finish().usage
    assert (usage.input_tokens, usage.output_tokens) == (20, 16000)
    for parser, usage in (("openai-responses", {"input_tokens": 3, "output_tokens": 9}),
                          ("anthropic-messages", {"input_tokens": 3, "output_tokens": 9})):  # fmt: skip
        read = meter.TailUsage(parser, {}, None)
        read.feed(json.dumps({"type": "message", "content": [], "usage": usage}).encode())
        assert (read.finish().usage.input_tokens, read.finish().usage.output_tokens) == (3, 9), parser
    gemini = meter.TailUsage("gemini", {}, None)
    gemini.feed(b'{"candidates": [], "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 7}}')
    assert gemini.finish().usage.output_tokens == 7
    # Without usage: the request's cap, else the answer's size, is the estimate; never nothing.
    capped = meter.TailUsage("openai-chat", {}, 16000)
    capped.feed(b'{"choices": [' + b" " * 100000 + b"]}")
    assert capped.finish().output_chars == 16000 * meter.CHARS_PER_TOKEN
    uncapped = meter.TailUsage("openai-chat", {}, None)
    uncapped.feed(b'{"choices": [' + b" " * 100000 + b"]}")
    assert uncapped.finish().output_chars == 100015


def test_grpc_web_text_usage_is_read_through_its_base64():
    # gRPC-Web's text form base64-encodes each frame on its own, padding and all (red-team F103).
    import base64

    from shadowgate.stages import meter

    def frame(message: bytes, flag: int = 0) -> bytes:
        return bytes([flag]) + len(message).to_bytes(4, "big") + message

    usage = bytes([0x08, 12, 0x10, 30, 0x18, 50])
    frames = [frame(b"\x0a\x04abcd"), frame(bytes([0x1A, len(usage)]) + usage), frame(b"grpc-status:0\r\n", 0x80)]
    text = b"".join(base64.b64encode(f) for f in frames)
    assert text.count(b"=") >= 2
    for step in (1, 5, len(text)):
        stream = meter.GrpcUsageStream("/google.ai.generativelanguage.v1beta.GenerativeService/GenerateContent", True)
        for i in range(0, len(text), step):
            stream.feed(text[i : i + step])
        assert (stream.finish().usage.input_tokens, stream.finish().usage.output_tokens) == (12, 38), step
