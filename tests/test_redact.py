"""DLP in the request path, end to end: what the provider receives, what the user gets back."""

from __future__ import annotations

import gzip
import json

import pytest

AWS_KEY = "AKIAZ7Q3M5X2R3W4T5YB"
EMAIL = "jane.doe@customer-corp.com"
PROMPT = f"Debug this: aws_access_key_id={AWS_KEY} fails for user {EMAIL}, please help"


def policy(tmp_path, text: str) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return f"shadowgate_policy={path}"


def test_secrets_and_pii_are_redacted_before_the_provider_sees_them(proxy_with, upstream):
    import openai

    proxy = proxy_with("dlp: {secrets: redact, pii: redact}\n")
    with proxy.sdk_http("dlp_redact") as http:
        client = openai.OpenAI(api_key="sk-test", http_client=http, max_retries=0)
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": PROMPT}],
        )
    seen = upstream.seen[-1]
    body = json.loads(seen.body)
    assert AWS_KEY not in seen.body.decode() and EMAIL not in seen.body.decode()
    assert (
        body["messages"][1]["content"]
        == "Debug this: aws_access_key_id=[AWS_ACCESS_KEY_1] fails for user [EMAIL_1], please help"
    )
    assert body["model"] == "gpt-4o-mini" and body["messages"][0] == {"role": "system", "content": "be brief"}
    assert int(seen.headers["content-length"]) == len(seen.body)
    [row] = proxy.rows("user_name = 'dlp_redact'", expect=1)
    assert (row["dlp_findings"], row["dlp_action"]) == ("AWS_ACCESS_KEY:1,EMAIL:1", "redact")
    # The planted values are in no row, segment or log line.
    everything = b"".join(p.read_bytes() for p in proxy.db.parent.rglob("*.parquet")) + proxy.log().encode()
    assert AWS_KEY.encode() not in everything and EMAIL.encode() not in everything


def test_block_mode_makes_the_sdk_raise_naming_the_type(proxy_with, upstream):
    import anthropic

    proxy = proxy_with("dlp: {secrets: block, pii: log}\n")
    before = len(upstream.seen)
    with proxy.sdk_http("dlp_block") as http:
        client = anthropic.Anthropic(api_key="sk-ant-api03-x", http_client=http, max_retries=0)
        with pytest.raises(anthropic.PermissionDeniedError) as e:
            client.messages.create(
                model="claude-sonnet-5", max_tokens=10, messages=[{"role": "user", "content": PROMPT}]
            )
    assert "AWS_ACCESS_KEY" in str(e.value) and len(upstream.seen) == before
    [row] = proxy.rows("user_name = 'dlp_block'", expect=1)
    assert row["dlp_action"] == "block" and row["status_code"] == 403


@pytest.mark.parametrize("stream, split", [(False, None), (True, None), (True, "3")])
def test_reversible_mode_gives_the_user_their_values_back(proxy_with, upstream, stream, split):
    import openai

    proxy = proxy_with("dlp: {secrets: redact, pii: redact, reversible: true}\n")
    headers = {"x-fake-split": split} if split else {}
    with proxy.sdk_http("dlp_rev", headers=headers) as http:
        client = openai.OpenAI(
            api_key="sk-test", base_url="https://api.openai.com/_fake/echo/v1", http_client=http, max_retries=0
        )
        messages = [{"role": "user", "content": PROMPT}]
        if stream:
            text = "".join(
                c.choices[0].delta.content or ""
                for c in client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True)
                if c.choices
            )
        else:
            text = client.chat.completions.create(model="gpt-4o-mini", messages=messages).choices[0].message.content
    # The provider only ever saw placeholders; the user reads the original values.
    assert AWS_KEY.encode() not in upstream.seen[-1].body
    assert text.strip() == f"You said: {PROMPT}".strip()


def test_gzip_request_body_is_scanned_and_re_encoded(proxy_with, upstream):
    proxy = proxy_with("dlp: {}\n")
    body = gzip.compress(
        json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]}).encode()
    )
    with proxy.client("dlp_gzip") as client:
        r = client.post(
            "https://api.openai.com/v1/chat/completions",
            content=body,
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )
    assert r.status_code == 200
    seen = upstream.seen[-1]
    assert seen.headers["content-encoding"] == "gzip"
    received = gzip.decompress(seen.body).decode()
    assert AWS_KEY not in received and "[AWS_ACCESS_KEY_1]" in received


def test_a_scan_over_its_time_budget_fails_closed(proxy_with, upstream):
    proxy = proxy_with("dlp: {budget_ms: 0.001, budget_us_per_byte: 0}\n")
    before = len(upstream.seen)
    with proxy.client("dlp_slow") as client:
        r = client.post(
            "https://api.openai.com/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT * 50}]},
        )
    assert r.status_code == 403 and "DLP fails closed" in r.json()["error"]["message"]
    assert len(upstream.seen) == before
    [row] = proxy.rows("user_name = 'dlp_slow'", expect=1)
    assert row["dlp_action"] == "error"


def test_one_huge_string_over_the_budget_fails_closed(proxy_with, upstream):
    # The budget was checked between strings only: a body whose one prompt string took far
    # longer to scan than the budget was scanned to its end and sent on. The scanner now checks
    # the request's deadline inside the string.
    from shadowgate.dlp.evaluation import load

    clean = "\n\n".join(d.text for d in load("clean.jsonl"))
    text = (clean * (4_000_000 // len(clean) + 1))[:4_000_000]  # ~0.4 s of CPU to scan
    proxy = proxy_with("dlp: {budget_ms: 150, budget_us_per_byte: 0}\n")
    before = len(upstream.seen)
    with proxy.client("dlp_one_string") as client:
        r = client.post(
            "https://api.openai.com/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]},
            timeout=60,
        )
    assert r.status_code == 403, r.text[:300]
    message = r.json()["error"]["message"]
    assert "ran out of time" in message and "DLP fails closed" in message
    assert len(upstream.seen) == before
    [row] = proxy.rows("user_name = 'dlp_one_string'", expect=1)
    assert row["dlp_action"] == "error"


def test_a_five_megabyte_log_is_scanned_within_budget(proxy_with, upstream):
    proxy = proxy_with("dlp: {budget_ms: 5000}\n")
    log_text = "".join(
        f"2026-11-28T10:{i % 60:02d}:00Z INFO worker-{i % 17} processed job {i} in {i % 997} ms\n"
        for i in range(80_000)
    )
    log_text = log_text[: 5 * 1024 * 1024 - len(PROMPT)] + PROMPT
    with proxy.client("dlp_big") as client:
        r = client.post(
            "https://api.openai.com/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": log_text}]},
            timeout=60,
        )
    assert r.status_code == 200
    assert AWS_KEY.encode() not in upstream.seen[-1].body
    [row] = proxy.rows("user_name = 'dlp_big'", expect=1)
    assert row["dlp_action"] == "redact" and "AWS_ACCESS_KEY:1" in row["dlp_findings"]


def test_observe_mode_scans_but_changes_nothing(proxy_with, upstream):
    proxy = proxy_with("mode: observe\ndlp: {secrets: block}\n")
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]}).encode()
    with proxy.client("dlp_observe") as client:
        r = client.post(
            "https://api.openai.com/v1/chat/completions", content=body, headers={"content-type": "application/json"}
        )
    assert r.status_code == 200 and upstream.seen[-1].body == body
    [row] = proxy.rows("user_name = 'dlp_observe'", expect=1)
    assert row["dlp_action"] == "would_block"


def test_the_scan_counts_in_the_rows_overhead(proxy_with):
    # proxy_overhead_us is all of shadowgate's time on the event loop, so it must include the
    # DLP scan of a prompt scanned inline (below the size handed to a thread).
    log_text = "".join(
        f"2026-11-28T10:{i % 60:02d}:00Z INFO worker-{i % 17} processed job {i} in {i % 997} ms\n" for i in range(900)
    )
    assert 50_000 < len(log_text) < 64 * 1024
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": log_text}]}
    overhead = {}
    for dlp in ("off", "redact"):
        proxy = proxy_with(f"dlp: {{secrets: {dlp}, pii: {dlp}}}\n")
        with proxy.client(f"dlp_{dlp}") as client:
            assert client.post("https://api.openai.com/v1/chat/completions", json=body).status_code == 200
        [row] = proxy.rows(f"user_name = 'dlp_{dlp}'", expect=1)
        overhead[dlp] = row["proxy_overhead_us"]
    # The scan of ~55 KB of dense log lines takes milliseconds (DLP runs at ~4-16 MB/s here).
    assert overhead["redact"] - overhead["off"] > 1000, overhead


def test_dlp_scans_the_body_the_redirect_rewrote(fresh_proxy, tmp_path, upstream, monkeypatch):
    # Act (model mapping) rewrites the body before DLP: DLP must redact that body, not the
    # parse Identify made of the original, or the mapped model would be lost.
    monkeypatch.setenv("SG_TEST_DLP_GATEWAY_KEY", "sk-gateway-for-dlp-test")
    proxy = fresh_proxy("--set", policy(tmp_path, (
        "dlp: {secrets: redact, pii: redact}\n"
        "rules:\n"
        "  - id: to-gateway\n"
        "    match: {provider: openai}\n"
        "    action: redirect\n"
        "    gateway: {openai_base_url: 'https://llm.corp.test/v1', key_env: SG_TEST_DLP_GATEWAY_KEY,"
        " model_map: {gpt-4o-mini: corp-gpt-4o-mini}}\n"
    )))  # fmt: skip
    with proxy.client("dlp_redirect") as client:
        r = client.post(
            "https://api.openai.com/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": PROMPT}]},
        )
    assert r.status_code == 200
    seen = upstream.seen[-1]
    body = json.loads(seen.body)
    assert seen.host == "llm.corp.test" and body["model"] == "corp-gpt-4o-mini"
    assert EMAIL not in seen.body.decode() and "[EMAIL_1]" in body["messages"][0]["content"]
    [row] = proxy.rows("user_name = 'dlp_redirect'", expect=1)
    assert row["decision"] == "redirect" and row["dlp_action"] == "redact"


def test_cohere_embed_texts_are_redacted_through_the_proxy(proxy_with, upstream):
    """Regression: Cohere Embed's `texts` reached the provider with the address in it."""
    proxy = proxy_with("dlp: {secrets: redact, pii: redact}\n")
    body = {"model": "embed-english-v3.0", "input_type": "search_document", "texts": [f"mail me at {EMAIL}", "hello"]}
    with proxy.client("dlp_cohere") as client:
        r = client.post("https://api.cohere.com/v2/embed", json=body, headers={"authorization": "Bearer co-test"})
    assert r.status_code == 200
    seen = upstream.seen[-1]
    assert seen.path == "/v2/embed" and EMAIL not in seen.body.decode()
    assert json.loads(seen.body)["texts"] == ["mail me at [EMAIL_1]", "hello"]
    [row] = proxy.rows("user_name = 'dlp_cohere'", expect=1)
    assert (row["dlp_findings"], row["dlp_action"]) == ("EMAIL:1", "redact")


def test_reversible_mode_restores_a_crlf_stream_through_the_proxy(proxy_with, upstream):
    """Regression: with CRLF-delimited SSE the restorer held the whole stream back, then let it
    out with the placeholders in it."""
    import openai

    proxy = proxy_with("dlp: {secrets: redact, pii: redact, reversible: true}\n")
    headers = {"x-fake-split": "3", "x-fake-newline": "crlf"}
    with proxy.sdk_http("dlp_crlf", headers=headers) as http:
        client = openai.OpenAI(
            api_key="sk-test", base_url="https://api.openai.com/_fake/echo/v1", http_client=http, max_retries=0
        )
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}], stream=True
        )
        pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert AWS_KEY.encode() not in upstream.seen[-1].body
    assert "".join(pieces) == f"You said: {PROMPT}"
    assert len(pieces) > 20  # event by event, not one release at the end


# --------------------------------------------------------------------------- restoring, in process


def test_scan_json_redacts_cohere_embed_texts():
    """Regression: Cohere Embed's `texts` reached the provider unredacted."""
    from collections import Counter

    from shadowgate.config.policy import DlpPolicy
    from shadowgate.dlp import Placeholders
    from shadowgate.stages.redact import scan_json
    from shadowgate.stages.redact import shared_scanner

    body = {"model": "embed-v4.0", "input_type": "search_document", "texts": ["mail me at jane.doe@example.com"]}
    cleaned, counts, actions = scan_json(body, shared_scanner(), Placeholders(), DlpPolicy())
    assert cleaned["texts"] == ["mail me at [EMAIL_1]"]
    assert counts == Counter({"EMAIL": 1}) and actions == {"redact"}


def _restorer(parser: str, content_type: str, prompt: str):
    from shadowgate.config.attribution import Person
    from shadowgate.config.policy import DlpPolicy
    from shadowgate.dlp import Placeholders
    from shadowgate.stages.redact import json_escaped
    from shadowgate.stages.redact import scan_json
    from shadowgate.stages.redact import shared_scanner
    from shadowgate.stages.redact import stream_restorer
    from shadowgate.storage.schema import FlowRecord

    placeholders = Placeholders()
    cleaned, _, _ = scan_json(
        {"messages": [{"role": "user", "content": prompt}]}, shared_scanner(), placeholders, DlpPolicy()
    )
    rec = FlowRecord(
        0.0,
        "127.0.0.1",
        Person("u", None),
        "h",
        "h",
        None,
        None,
        "POST",
        "/",
        restore=json_escaped(placeholders),
        placeholders=placeholders,
    )
    return stream_restorer(parser, content_type, rec), cleaned["messages"][0]["content"]


def _chat_event(text: str, newline: bytes) -> bytes:
    chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}}]}
    return b"data: " + json.dumps(chunk).encode() + newline + newline


def _chat_text(stream: bytes) -> str:
    from shadowgate.wireformats.framing import SSEDecoder

    decoder = SSEDecoder()
    frames = decoder.feed(stream) + decoder.finish()
    return "".join(f.data["choices"][0]["delta"]["content"] for f in frames if f.data and f.data.get("choices"))


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_restorer_releases_each_event_and_restores_placeholders_split_over_events(newline):
    restore, redacted = _restorer("openai-chat", "text/event-stream", f"write to {EMAIL} today")
    assert redacted == "write to [EMAIL_1] today"
    pieces = ["You said: write to ", "[EM", "AIL", "_1", "] today"]
    events = [_chat_event(p, newline) for p in pieces] + [b"data: [DONE]" + newline + newline]
    out = [restore(e) for e in events]
    assert out[0] == events[0]  # nothing to restore: passed on at once, byte for byte
    assert out[-1].endswith(b"data: [DONE]" + newline + newline)
    stream = b"".join(out) + restore(b"")
    assert _chat_text(stream) == f"You said: write to {EMAIL} today"
    assert b"EMAIL_1" not in stream and newline + newline in stream


def test_restorer_handles_any_chunking_of_a_crlf_stream():
    import random

    restore_factory = lambda: _restorer("openai-chat", "text/event-stream", f"to {EMAIL}")[0]  # noqa: E731
    body = b"".join(_chat_event(p, b"\r\n") for p in ["to [", "EMAIL_", "1] ok"])
    rng = random.Random(3)
    for _ in range(50):
        restore = restore_factory()
        cuts = sorted(rng.sample(range(1, len(body)), 6))
        chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)])]
        stream = b"".join(restore(c) for c in chunks) + restore(b"")
        assert _chat_text(stream) == f"to {EMAIL} ok"


def test_restorer_joins_ndjson_deltas_of_ollama():
    restore, _ = _restorer("ollama", "application/x-ndjson", f"to {EMAIL}")
    lines = [json.dumps({"model": "m", "message": {"role": "assistant", "content": p}, "done": False}).encode() + b"\n"
             for p in ["mail [EMA", "IL_1", "] now"]]  # fmt: skip
    stream = b"".join(restore(line) for line in lines) + restore(b"")
    text = "".join(json.loads(line)["message"]["content"] for line in stream.splitlines())
    assert text == f"mail {EMAIL} now"


def test_restorer_restores_placeholders_outside_the_text_deltas():
    restore, _ = _restorer("anthropic-messages", "text/event-stream", f"to {EMAIL}")
    event = {
        "type": "content_block_delta",
        "index": 1,
        "delta": {"type": "input_json_delta", "partial_json": '{"to": "[EMAIL_1]"}'},
    }
    raw = b"event: content_block_delta\r\ndata: " + json.dumps(event).encode() + b"\r\n\r\n"
    out = restore(raw) + restore(b"")
    assert out.startswith(b"event: content_block_delta\r\ndata: ") and out.endswith(b"\r\n\r\n")
    data = json.loads(out.split(b"data: ", 1)[1])
    assert json.loads(data["delta"]["partial_json"]) == {"to": EMAIL}
