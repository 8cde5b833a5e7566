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


@pytest.mark.parametrize("alt", ["alt=proto", "$alt=proto", "%24alt=proto"], ids=["alt", "dollar", "escaped"])
def test_a_protobuf_answer_is_metered(proxy_with, upstream, alt, request):
    proxy = proxy_with(BUDGET)
    candidate = _pb(1, _pb(1, _pb(1, _pb(2, b"hello")) + _pb(2, b"model")))
    usage = _pb(3, _pb(1, 2000) + _pb(2, 8000) + _pb(3, 10000))
    case = copy.deepcopy(upstream.cases["gemini-generate-thinking-cached"])
    case["response"]["headers"] = {"content-type": "application/x-protobuf"}
    case["response"].pop("body_json", None)
    case["response"]["body_base64"] = base64.b64encode(candidate + usage).decode()
    upstream.cases["proto-answer"] = case
    user = "proto-" + request.node.callspec.id
    answer, mark = post_marked(proxy, user, BODY, f"{GENERATE}?{alt}", headers={"x-fake-case": "proto-answer"})
    assert answer.status_code == 200 and reached(upstream, mark)
    assert answer.content == candidate + usage  # the client gets the answer as sent
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert (row["input_tokens"], row["output_tokens"], row["usage_estimated"]) == (2000, 8000, False)
    second, mark = post_marked(proxy, user, BODY, f"{GENERATE}?{alt}", headers={"x-fake-case": "proto-answer"})
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
