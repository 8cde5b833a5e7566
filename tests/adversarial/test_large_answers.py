"""An answer too large to parse is still metered (red-team F106).

`logprobs: true, top_logprobs: 20` makes each output token a kilobyte of JSON: an answer with a
Content-Length over shadowgate_max_parse_bytes was passed through unread and its row said 0
output tokens, so a token budget never filled. Its usage is now read from its end (where every
provider puts it), and without one the output is estimated at the request's cap. Over gRPC, a
GenerateContent frame over 4 MB is walked field by field to its usage metadata.
"""

from __future__ import annotations

import base64
import json

from tests.adversarial.calls import post_marked
from tests.adversarial.calls import reached
from tests.adversarial.wire import protobuf_field as _pb

LIMIT = 64 * 1024
BUDGET = "budgets:\n  - {id: daily, per: user, tokens_per_day: 100000}\n"
ENTRY = {"token": "tok", "logprob": -0.1, "top_logprobs": [{"token": f"t{k}", "logprob": -1.5} for k in range(20)]}


def _big_case(upstream, name: str, usage: dict | None) -> None:
    answer = {"id": "chatcmpl-big", "object": "chat.completion", "model": "gpt-4.1-2025-04-14",
              "choices": [{"index": 0, "message": {"role": "assistant", "content": "tok" * 400},
                           "logprobs": {"content": [ENTRY] * 400}, "finish_reason": "length"}]}  # fmt: skip
    if usage is not None:
        answer["usage"] = usage
    data = json.dumps(answer).encode()
    assert len(data) > LIMIT
    upstream.cases[name] = {"name": name, "host": "api.openai.com",
        "request": {"method": "POST", "path": "/v1/chat/completions", "query": "", "headers": {}, "body": None},
        "response": {"status": 200, "headers": {"content-type": "application/json"}, "body_text": None,
                     "body_base64": base64.b64encode(data).decode(), "body_json": None}}  # fmt: skip


def _ask(proxy, user: str, case: str, max_tokens: int | None = 400):
    body = {
        "model": "gpt-4.1",
        "messages": [{"role": "user", "content": "count"}],
        "logprobs": True,
        "top_logprobs": 20,
    }
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return post_marked(proxy, user, json.dumps(body).encode(), headers={"x-fake-case": case})


def test_a_large_answer_is_metered_from_its_end(proxy_with, upstream):
    proxy = proxy_with(BUDGET, shadowgate_max_parse_bytes=LIMIT)
    _big_case(upstream, "big-usage", {"prompt_tokens": 20, "completion_tokens": 400, "total_tokens": 420})
    answer, mark = _ask(proxy, "big-usage", "big-usage")
    assert answer.status_code == 200 and reached(upstream, mark)
    assert len(answer.content) > LIMIT and answer.json()["usage"]["completion_tokens"] == 400
    [row] = proxy.rows("user_name = 'big-usage'", expect=1)
    assert (row["input_tokens"], row["output_tokens"], row["usage_estimated"]) == (20, 400, False)


def test_a_large_answer_without_usage_is_estimated_at_its_cap_never_nothing(proxy_with, upstream):
    proxy = proxy_with(BUDGET, shadowgate_max_parse_bytes=LIMIT)
    _big_case(upstream, "big-bare", None)
    _ask(proxy, "big-bare", "big-bare", max_tokens=3000)
    _ask(proxy, "big-bare-uncapped", "big-bare", max_tokens=None)
    [capped] = proxy.rows("user_name = 'big-bare'", expect=1)
    assert (capped["output_tokens"], capped["usage_estimated"]) == (3000, True)
    [uncapped] = proxy.rows("user_name = 'big-bare-uncapped'", expect=1)
    assert uncapped["output_tokens"] >= LIMIT // 4 and uncapped["usage_estimated"] is True


def test_a_grpc_answer_frame_over_the_frame_limit_is_metered(proxy_with, upstream):
    usage = _pb(3, _pb(1, 12) + _pb(2, 16000) + _pb(3, 16012))
    candidate = _pb(1, _pb(1, _pb(1, _pb(2, b"tok " * (5 * 1024 * 1024 // 4)))))  # a 5 MB candidate
    message = candidate + usage
    path = "/google.ai.generativelanguage.v1beta.GenerativeService/GenerateContent"
    upstream.cases["grpc-big"] = {"name": "grpc-big", "host": "generativelanguage.googleapis.com",
        "request": {"method": "POST", "path": path, "query": "", "headers": {}, "body": None},
        "response": {"status": 200, "headers": {"content-type": "application/grpc"}, "body_text": None,
                     "body_json": None,
                     "body_base64": base64.b64encode(b"\0" + len(message).to_bytes(4, "big") + message).decode()}}  # fmt: skip
    proxy = proxy_with(BUDGET)
    request = _pb(1, b"models/gemini-2.5-flash") + _pb(2, _pb(1, _pb(1, b"count")) + _pb(2, b"user"))
    with proxy.client("grpc-big") as client:
        client.post(f"https://generativelanguage.googleapis.com{path}",
                    content=b"\0" + len(request).to_bytes(4, "big") + request,
                    headers={"content-type": "application/grpc", "te": "trailers", "x-fake-case": "grpc-big"})  # fmt: skip
    [row] = proxy.rows("user_name = 'grpc-big'", expect=1)
    assert (row["input_tokens"], row["output_tokens"]) == (12, 16000)
