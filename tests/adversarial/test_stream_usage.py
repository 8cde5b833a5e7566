"""A streamed Chat Completions call is metered from the provider's own counts (red-team F21).

Without `stream_options.include_usage` OpenAI's stream carries no usage: the proxy estimated from
the visible text, so a reasoning model's hidden tokens never reached cost or budgets, and a user
under a token budget spent many times it by streaming. The proxy now asks for the usage where the
catalog says the service reports it only when asked, and takes the extra chunk out of the answer
when the client had not asked. Real mitmdump, the official OpenAI SDK and raw httpx.
"""

from __future__ import annotations

import json

import pytest

from shadowgate.wireformats.openai import body_asking_usage
from shadowgate.wireformats.openai import is_usage_only_chunk
from tests.adversarial.calls import post_marked
from tests.adversarial.calls import reached
from tests.adversarial.wire import marker

CHAT = "https://api.openai.com/v1/chat/completions"
AZURE_CHAT = "https://acme-eastus.openai.azure.com/openai/deployments/gpt-4o/chat/completions?api-version=2024-06-01"
ASK = {"include_usage": True}


def _seen_body(upstream, mark: str) -> bytes:
    [seen] = [s for s in upstream.seen if s.headers.get("x-attack") == mark]
    return seen.body


def _reasoning_case(upstream) -> str:
    """An o3 stream whose answer is 3 visible tokens and 64 reasoning ones (80 output in all),
    with the usage chunk at the end, as OpenAI sends it when asked."""
    name = "stream-usage-" + marker()[:8]

    def chunk(**fields) -> str:
        return (
            "data: "
            + json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "o3", **fields})
            + "\n\n"
        )

    body = (
        chunk(choices=[{"index": 0, "delta": {"role": "assistant", "content": "Yes."}, "finish_reason": None}], usage=None)
        + chunk(choices=[{"index": 0, "delta": {}, "finish_reason": "stop"}], usage=None)
        + chunk(choices=[], usage={"prompt_tokens": 20, "completion_tokens": 80, "total_tokens": 100,
                                   "completion_tokens_details": {"reasoning_tokens": 64}})
        + "data: [DONE]\n\n"
    )  # fmt: skip
    upstream.cases[name] = {"name": name, "host": "api.openai.com",
                            "request": {"method": "POST", "path": "/v1/chat/completions", "query": "", "headers": {}, "body": None},
                            "response": {"status": 200, "headers": {"content-type": "text/event-stream"},
                                         "body_text": body, "body_base64": None, "body_json": None}}  # fmt: skip
    return name


def _events(text: str) -> list[dict]:
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]


def test_the_official_sdk_streaming_without_usage_gets_its_stream_and_the_row_the_real_counts(proxy, upstream):
    import openai

    user = "su-sdk-" + marker()[:6]
    with proxy.sdk_http(user) as http:
        client = openai.OpenAI(api_key="sk-test", http_client=http, max_retries=0)
        chunks = list(
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hi"}], stream=True
            )
        )
    # Every chunk the client gets has a choice: code that reads choices[0] of each works as before.
    assert chunks and all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Hi there! How can I help you today?"
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    # The fake upstream answers with usage only when the forwarded request asks for it.
    assert (row["input_tokens"], row["output_tokens"], row["usage_estimated"]) == (9, 10, False)


def test_hidden_reasoning_tokens_reach_the_budget(proxy_with, upstream):
    proxy = proxy_with("budgets:\n  - {id: daily, per: user, tokens_per_day: 150}\n")
    user = "su-budget-" + marker()[:6]
    case = _reasoning_case(upstream)
    body = json.dumps({"model": "o3", "stream": True, "messages": [{"role": "user", "content": "prove it"}]}).encode()
    try:
        first, mark = post_marked(proxy, user, body, CHAT, headers={"x-fake-case": case})
        assert first.status_code == 200, first.text[:300]
        assert json.loads(_seen_body(upstream, mark))["stream_options"] == ASK
        # The client did not ask: the usage chunk is not in its answer, the rest is as sent.
        events = _events(first.text)
        assert [e["choices"][0].get("finish_reason") for e in events] == [None, "stop"]
        assert first.text.endswith("data: [DONE]\n\n")
        second, mark = post_marked(proxy, user, body, CHAT, headers={"x-fake-case": case})
    finally:
        upstream.cases.pop(case, None)
    assert second.status_code == 429 and not reached(upstream, mark), "100 of 150 tokens spent: 1024 more do not fit"
    row, _refused = proxy.rows(f"user_name = '{user}'", expect=2)
    assert (row["output_tokens"], row["reasoning_tokens"], row["usage_estimated"]) == (80, 64, False)


def test_a_client_that_asked_gets_its_usage_chunk_and_its_own_bytes(proxy_with, upstream):
    proxy = proxy_with(None)
    user = "su-asked-" + marker()[:6]
    case = _reasoning_case(upstream)
    body = b'{"model": "o3", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hi"}]}'
    try:
        answer, mark = post_marked(proxy, user, body, CHAT, headers={"x-fake-case": case})
    finally:
        upstream.cases.pop(case, None)
    assert answer.status_code == 200 and _seen_body(upstream, mark) == body
    assert _events(answer.text)[-1]["usage"]["completion_tokens"] == 80


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "o3", "stream": true, "stream_options": {"include_usage": false}, "messages": []}',
        b'{"model": "o3", "stream": true, "stream_options": null, "messages": []}',
        # Duplicate keys: the upstream reads the last; the proxy's one value replaces both.
        b'{"model": "o3", "stream": true, "stream_options": {"include_usage": true}, "stream_options": {}, "messages": []}',
    ],
    ids=["asked-false", "null", "duplicate"],
)
def test_options_that_ask_nothing_are_replaced_and_the_extra_chunk_dropped(proxy_with, upstream, body):
    proxy = proxy_with(None)
    user = "su-false-" + marker()[:6]
    case = _reasoning_case(upstream)
    try:
        answer, mark = post_marked(proxy, user, body, CHAT, headers={"x-fake-case": case})
    finally:
        upstream.cases.pop(case, None)
    assert answer.status_code == 200, answer.text[:300]
    forwarded = _seen_body(upstream, mark)
    assert forwarded.count(b"stream_options") == 1 and json.loads(forwarded)["stream_options"]["include_usage"] is True
    assert all(e["choices"] for e in _events(answer.text))
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert (row["output_tokens"], row["usage_estimated"]) == (80, False)


@pytest.mark.parametrize("policy", [None, "dlp: {secrets: redact}\n"], ids=["as-sent", "redacted"])
def test_the_member_is_added_to_the_body_as_the_other_stages_left_it(proxy_with, upstream, policy):
    proxy = proxy_with(policy)
    user = "su-bytes-" + marker()[:6]
    body = b'{"model":"gpt-4o-mini",  "stream":true,\n "messages":[{"role":"user","content":"key AKIA2OGYBAH6STMMNXNN"}]}\n'
    answer, mark = post_marked(proxy, user, body, CHAT)
    assert answer.status_code == 200, answer.text[:300]
    forwarded = _seen_body(upstream, mark)
    assert forwarded.endswith(b'}],"stream_options":{"include_usage":true}}')
    if policy is None:  # the client's bytes, the member before the closing brace
        assert forwarded == body.rstrip()[:-1] + b',"stream_options":{"include_usage":true}}'
    else:
        assert b"AKIA2OGYBAH6STMMNXNN" not in forwarded and json.loads(forwarded)["stream"] is True


STREAM = b'{"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "hi"}]}'


def test_switched_off_the_request_is_left_alone(proxy_with, upstream):
    off = proxy_with(None, shadowgate_stream_usage="off")
    user = "su-off-" + marker()[:6]
    answer, mark = post_marked(off, user, STREAM, CHAT)
    assert answer.status_code == 200 and _seen_body(upstream, mark) == STREAM
    [row] = off.rows(f"user_name = '{user}'", expect=1)
    assert row["usage_estimated"] is True


AZURE = "https://acme-eastus.openai.azure.com/openai"
DEPLOYMENT = AZURE + "/deployments/o3-prod/chat/completions"
# Each Azure OpenAI URL and whether its api-version takes stream_options: the v1 API and the dated
# previews from 2024-08-01-preview do; the dated GA versions refuse the member.
AZURE_VERSIONS = {
    "ga-2024-06-01": (AZURE_CHAT, False),
    "ga-2024-10-21": (DEPLOYMENT + "?api-version=2024-10-21", False),
    "preview-before": (DEPLOYMENT + "?api-version=2024-07-01-preview", False),
    "no-version": (DEPLOYMENT, False),
    "v1-dated": (AZURE + "/v1/chat/completions?api-version=2024-10-21", False),
    "first-preview": (DEPLOYMENT + "?api-version=2024-08-01-preview", True),
    "later-preview": (DEPLOYMENT + "?api-version=2025-04-01-preview", True),
    "v1": (AZURE + "/v1/chat/completions", True),
    "v1-preview": (AZURE + "/v1/chat/completions?api-version=preview", True),
    "v1-latest": (AZURE + "/v1/chat/completions?api-version=latest", True),
}


@pytest.mark.parametrize("version", [name for name, (_, asks) in AZURE_VERSIONS.items() if not asks])
def test_an_azure_api_version_without_the_option_is_left_alone(proxy_with, upstream, version):
    url, _ = AZURE_VERSIONS[version]
    proxy = proxy_with(None)
    _answer, mark = post_marked(proxy, "su-azure-" + marker()[:6], STREAM, url, headers={"api-key": "k"})
    assert _seen_body(upstream, mark) == STREAM


@pytest.mark.parametrize("version", [name for name, (_, asks) in AZURE_VERSIONS.items() if asks])
def test_an_azure_api_version_that_takes_it_is_asked_for_its_usage(proxy_with, upstream, version):
    """Azure OpenAI's previews from 2024-08-01-preview and its v1 API take stream_options: an o3
    deployment's hidden reasoning tokens are counted there too."""
    url, _ = AZURE_VERSIONS[version]
    proxy = proxy_with(None)
    user = "su-azure-ask-" + marker()[:6]
    case = _reasoning_case(upstream)
    try:
        answer, mark = post_marked(proxy, user, STREAM, url, headers={"api-key": "k", "x-fake-case": case})
    finally:
        upstream.cases.pop(case, None)
    assert answer.status_code == 200, answer.text[:300]
    assert json.loads(_seen_body(upstream, mark))["stream_options"] == ASK
    assert [e["choices"][0].get("finish_reason") for e in _events(answer.text)] == [None, "stop"]
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert (row["output_tokens"], row["reasoning_tokens"], row["usage_estimated"]) == (80, 64, False)


def test_a_service_the_catalog_does_not_mark_is_left_alone(proxy_with, upstream):
    proxy = proxy_with(None)
    url = "https://api.groq.com/openai/v1/chat/completions"
    _answer, mark = post_marked(
        proxy, "su-unmarked-" + marker()[:6], STREAM, url, headers={"authorization": "Bearer k"}
    )
    assert _seen_body(upstream, mark) == STREAM


def test_a_stream_that_is_no_stream_is_not_changed():
    assert body_asking_usage(b'{"model": "o3", "stream": "yes", "stream_options": {}}') is None
    assert body_asking_usage(b'{"model": "o3", "stream": true, "stream_options": "all"}') is None
    utf16 = body_asking_usage('{"stream": true}'.encode("utf-16"))
    assert utf16 is not None and json.loads(utf16.decode("utf-16"))["stream_options"] == ASK
    assert (
        body_asking_usage(b'\xef\xbb\xbf{"stream": true}')
        == b'\xef\xbb\xbf{"stream": true,"stream_options":{"include_usage":true}}'
    )
    assert body_asking_usage(b'{"stream": true, "stream_options": {') is None
    assert body_asking_usage(b'[{"stream": true}]') is None
    assert body_asking_usage(b'{"stream":true} \n') == b'{"stream":true,"stream_options":{"include_usage":true}}'


def test_only_the_usage_chunk_is_taken_for_it():
    assert is_usage_only_chunk(b'{"choices":[],"usage":{"prompt_tokens":1}}')
    assert not is_usage_only_chunk(b'{"choices":[{"delta":{"content":"usage []"}}],"usage":null}')
    assert not is_usage_only_chunk(b'{"choices":[],"usage":null}')
    assert not is_usage_only_chunk(b"[DONE]")


def _anthropic_case(upstream) -> str:
    name = "stream-cut-" + marker()[:8]
    events = [
        ("message_start", {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
         "model": "claude-sonnet-4-5", "content": [], "usage": {"input_tokens": 25, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "word " * 80}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 120}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    body = "".join(f"event: {kind}\ndata: {json.dumps(data)}\n\n" for kind, data in events)
    upstream.cases[name] = {"name": name, "host": "api.anthropic.com",
                            "request": {"method": "POST", "path": "/v1/messages", "query": "", "headers": {}, "body": None},
                            "response": {"status": 200, "headers": {"content-type": "text/event-stream"},
                                         "body_text": body, "body_base64": None, "body_json": None}}  # fmt: skip
    return name


@pytest.mark.parametrize("wire", ["openai", "anthropic"])
def test_a_client_that_hangs_up_before_the_usage_is_charged_what_it_read(proxy_with, upstream, wire):
    """The usage comes last: a client that stops reading once the text is there used to leave a
    row counting nothing (or Anthropic's 1 output token from message_start), and spent its budget
    for free."""
    proxy = proxy_with("budgets:\n  - {id: daily, per: user, tokens_per_day: 100000}\n")
    user = f"su-cut-{wire}-" + marker()[:6]
    if wire == "openai":
        case, url, done = _reasoning_case(upstream), CHAT, '"stop"'
        body = {"model": "o3", "stream": True, "messages": [{"role": "user", "content": "x" * 400}]}
    else:
        case, url, done = _anthropic_case(upstream), "https://api.anthropic.com/v1/messages", "content_block_stop"
        body = {"model": "claude-sonnet-4-5", "max_tokens": 200, "stream": True,
                "messages": [{"role": "user", "content": "x" * 400}]}  # fmt: skip
    headers = {"content-type": "application/json", "authorization": "Bearer sk-x", "x-api-key": "sk-ant-x",
               "x-fake-case": case, "x-fake-delay-ms": "400"}  # fmt: skip
    try:
        with proxy.client(user) as client, client.stream("POST", url, json=body, headers=headers) as answer:
            for line in answer.iter_lines():
                if done in line:
                    break  # hang up: the usage has not come yet
    finally:
        upstream.cases.pop(case, None)
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert row["error_type"] == "disconnect" and row["usage_estimated"] is True
    assert row["input_tokens"] >= 25
    if wire == "anthropic":
        assert row["output_tokens"] >= len("word " * 80) // 4
    else:
        assert row["output_tokens"] >= 1


@pytest.mark.parametrize(
    ("headers", "encode"),
    [
        ({"content-type": "application/json; charset=iso-8859-1"}, lambda b: b),
        ({"content-type": "text/plain"}, lambda b: b),
        ({"content-encoding": "gzip"}, lambda b: __import__("gzip").compress(b)),
    ],
    ids=["latin-1", "text-plain", "gzip"],
)
def test_a_declared_charset_or_a_compressed_body_does_not_dodge_it(proxy_with, upstream, headers, encode):
    """Red-team F117: a charset parameter or a gzipped body left the option out (OpenAI reads the
    JSON as UTF-8 whatever the header says), so the stream carried no usage again."""
    proxy = proxy_with(None)
    answer, mark = post_marked(proxy, "su-dodge-" + marker()[:6], encode(STREAM), CHAT, headers=headers)
    assert answer.status_code == 200, answer.text[:300]
    forwarded = _seen_body(upstream, mark)
    assert json.loads(forwarded)["stream_options"] == ASK
