"""Google's REST system parameters cannot hide a Gemini call's usage (red-team F103).

`alt=proto` (or `$alt=proto`) answers with the GenerateContentResponse in binary protobuf, whose
usage was not read: the row said 1 input / 0 output tokens and a token budget never filled. Its
usage metadata is now read from the protobuf. A partial response (`fields`, `$fields`,
`X-Goog-FieldMask`) leaves the usage out of a JSON answer: the parameter is taken off the call.
"""

from __future__ import annotations

import base64
import copy
import json

import pytest

from tests.adversarial.calls import post_marked
from tests.adversarial.calls import reached
from tests.adversarial.wire import protobuf_field as _pb

BUDGET = "budgets:\n  - {id: daily, per: user, tokens_per_day: 3000}\n"
GENERATE = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
BODY = json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).encode()


@pytest.mark.parametrize(
    ("alt", "url"),
    [("alt=proto", GENERATE), ("$alt=proto", GENERATE), ("%24alt=proto", GENERATE),
     ("alt=proto", GENERATE.replace(":generateContent", ":streamGenerateContent"))],
    ids=["alt", "dollar", "escaped", "stream"],
)  # fmt: skip
def test_a_protobuf_answer_is_metered(proxy_with, upstream, alt, url, request):
    proxy = proxy_with(BUDGET)
    candidate = _pb(1, _pb(1, _pb(1, _pb(2, b"hello")) + _pb(2, b"model")))
    usage = _pb(3, _pb(1, 2000) + _pb(2, 8000) + _pb(3, 10000))
    case = copy.deepcopy(upstream.cases["gemini-generate-thinking-cached"])
    case["response"]["headers"] = {"content-type": "application/x-protobuf"}
    case["response"].pop("body_json", None)
    case["response"]["body_base64"] = base64.b64encode(candidate + usage).decode()
    upstream.cases["proto-answer"] = case
    user = "proto-" + request.node.callspec.id
    answer, mark = post_marked(proxy, user, BODY, f"{url}?{alt}", headers={"x-fake-case": "proto-answer"})
    assert answer.status_code == 200 and reached(upstream, mark)
    assert answer.content == candidate + usage  # the client gets the answer as sent
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert (row["input_tokens"], row["output_tokens"], row["usage_estimated"]) == (2000, 8000, False)
    second, mark = post_marked(proxy, user, BODY, f"{url}?{alt}", headers={"x-fake-case": "proto-answer"})
    assert second.status_code == 429 and not reached(upstream, mark)


@pytest.mark.parametrize(
    ("query", "headers"),
    [("?fields=candidates.content.parts.text", {}), ("?%24fields=candidates&alt=json", {}),
     ("", {"x-goog-fieldmask": "candidates"})],
)  # fmt: skip
def test_a_partial_response_cannot_drop_the_usage(proxy_with, upstream, query, headers):
    proxy = proxy_with(BUDGET)
    answer, mark = post_marked(proxy, "fields", BODY, GENERATE + query, headers=headers)
    [seen] = [s for s in upstream.seen if s.headers.get("x-attack") == mark]
    assert answer.status_code == 200
    assert "fields" not in seen.path and "x-goog-fieldmask" not in seen.headers, seen.path
    assert ("alt=json" in seen.path) == ("alt=json" in query)  # other parameters stay


def test_a_grpc_web_text_answer_is_metered(proxy_with, upstream):
    # gRPC-Web's text form: base64 frames, read as raw ones, lost their usage.
    usage = _pb(3, _pb(1, 12) + _pb(2, 16000) + _pb(3, 16012))
    frames = [_pb(1, _pb(1, _pb(1, _pb(2, b"tok")))), usage]
    text = b"".join(base64.b64encode(b"\0" + len(m).to_bytes(4, "big") + m) for m in frames)
    path = "/google.ai.generativelanguage.v1beta.GenerativeService/GenerateContent"
    upstream.cases["grpc-web-text"] = {"name": "grpc-web-text", "host": "generativelanguage.googleapis.com",
        "request": {"method": "POST", "path": path, "query": "", "headers": {}, "body": None},
        "response": {"status": 200, "headers": {"content-type": "application/grpc-web-text"}, "body_text": None,
                     "body_json": None, "body_base64": base64.b64encode(text).decode()}}  # fmt: skip
    proxy = proxy_with(BUDGET)
    request = _pb(1, b"models/gemini-2.5-flash") + _pb(2, _pb(1, _pb(1, b"count")) + _pb(2, b"user"))
    with proxy.client("grpc-web-text") as client:
        client.post(f"https://generativelanguage.googleapis.com{path}",
                    content=base64.b64encode(b"\0" + len(request).to_bytes(4, "big") + request),
                    headers={"content-type": "application/grpc-web-text", "x-fake-case": "grpc-web-text"})  # fmt: skip
    [row] = proxy.rows("user_name = 'grpc-web-text'", expect=1)
    assert (row["input_tokens"], row["output_tokens"]) == (12, 16000)
