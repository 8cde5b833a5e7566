"""Class 4: a background response cannot spend past a daily token budget (red-team F48).

`POST /v1/responses {"background": true}` is answered `queued`, without usage; the tokens are
spent while it runs and reported on `GET /v1/responses/{id}` (or a stream resumed with
`?stream=true`), which was no metered route: three responses of 50 000 tokens passed a
10 000-token budget. A background create is now charged its upper bound (its prompt, its
max_output_tokens or 1024), and a retrieval is metered, each response id's usage counted once.
"""

from __future__ import annotations

import json

import pytest

from tests.adversarial.calls import post_marked
from tests.adversarial.calls import reached
from tests.adversarial.wire import marker

POLICY = "budgets:\n  - {id: daily, per: user, tokens_per_day: 10000}\n"
RESPONSES = "https://api.openai.com/v1/responses"
HEADERS = {"authorization": "Bearer sk-test"}


def _response(response_id: str, status: str, output_tokens: int | None) -> dict:
    usage = None
    if output_tokens is not None:
        usage = {"input_tokens": 20, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": output_tokens,
                 "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 20 + output_tokens}  # fmt: skip
    return {"id": response_id, "object": "response", "status": status, "background": True,
            "model": "o3-pro-2025-06-10", "output": [], "usage": usage, "error": None}  # fmt: skip


def _case(name: str, method: str, path: str, body: dict | None = None, sse: str | None = None) -> dict:
    headers = {"content-type": "text/event-stream" if sse is not None else "application/json"}
    return {"name": name, "host": "api.openai.com",
            "request": {"method": method, "path": path, "query": "", "headers": {}, "body": None},
            "response": {"status": 200, "headers": headers, "body_text": sse, "body_base64": None, "body_json": body}}  # fmt: skip


@pytest.fixture
def background(upstream):
    """Cases for one response id: created queued, fetched completed (50 000 output tokens), and
    resumed as a stream; picked by name (x-fake-case)."""
    response_id = "resp_bg_" + marker()[:8]
    done = _response(response_id, "completed", 50000)
    events = [
        {"type": "response.in_progress", "sequence_number": 3, "response": _response(response_id, "in_progress", None)},
        {"type": "response.completed", "sequence_number": 4, "response": done},
    ]
    sse = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
    names = {
        "create": f"{response_id}-create",
        "get": f"{response_id}-get",
        "resume": f"{response_id}-resume",
    }
    added = {
        names["create"]: _case(names["create"], "POST", "/v1/responses", _response(response_id, "queued", None)),
        names["get"]: _case(names["get"], "GET", f"/v1/responses/{response_id}", done),
        names["resume"]: _case(names["resume"], "GET", f"/v1/responses/{response_id}", sse=sse),
    }
    upstream.cases.update(added)
    yield response_id, names
    for name in added:
        upstream.cases.pop(name, None)


def _create(proxy, user: str, case: str, **extra):
    body = json.dumps({"model": "o3-pro", "background": True, "input": "write a long report", **extra}).encode()
    return post_marked(proxy, user, body, RESPONSES, headers={"x-fake-case": case})


def _get(proxy, user: str, response_id: str, case: str, query: str = ""):
    with proxy.client(user) as client:
        return client.get(f"{RESPONSES}/{response_id}{query}", headers={**HEADERS, "x-fake-case": case})


def test_a_background_response_is_counted_when_fetched(proxy_with, upstream, background):
    proxy = proxy_with(POLICY)
    response_id, case = background
    user = "bg-fetch-" + marker()[:6]
    created, mark = _create(proxy, user, case["create"])
    assert created.status_code == 200 and reached(upstream, mark), created.text[:200]
    fetched = _get(proxy, user, response_id, case["get"])
    assert fetched.status_code == 200 and fetched.json()["usage"]["output_tokens"] == 50000
    again, mark = _create(proxy, user, case["create"])
    assert again.status_code == 429, again.text[:200]
    assert not reached(upstream, mark)
    # The spend was made: fetching the result is never refused, and counts no more.
    second = _get(proxy, user, response_id, case["get"])
    assert second.status_code == 200, second.text[:200]
    create, first_get, _refused, second_get = proxy.rows(f"user_name = '{user}'", expect=4)
    assert (create["operation"], create["usage_estimated"], create["output_tokens"]) == ("chat", True, 1024)
    assert (first_get["operation"], first_get["response_id"]) == ("retrieve_response", response_id)
    assert (first_get["input_tokens"], first_get["output_tokens"], first_get["usage_estimated"]) == (20, 50000, False)
    assert first_get["model"] == "o3-pro-2025-06-10" and first_get["cost_usd"] > 1
    assert (second_get["input_tokens"], second_get["output_tokens"]) == (None, None)


def test_a_background_create_must_fit_its_output_cap(proxy_with, upstream, background):
    proxy = proxy_with(POLICY)
    _, case = background
    user = "bg-cap-" + marker()[:6]
    answer, mark = _create(proxy, user, case["create"], max_output_tokens=20000)
    assert answer.status_code == 429 and "the call may use" in answer.text, answer.text[:200]
    assert not reached(upstream, mark)
    fits, mark = _create(proxy, user, case["create"], max_output_tokens=3000)
    assert fits.status_code == 200 and reached(upstream, mark)
    [row] = proxy.rows(f"user_name = '{user}' AND status_code = 200", expect=1)
    assert (row["output_tokens"], row["usage_estimated"]) == (3000, True)


def test_a_resumed_stream_is_counted_once(proxy_with, upstream, background):
    proxy = proxy_with(POLICY)
    response_id, case = background
    user = "bg-resume-" + marker()[:6]
    resumed = _get(proxy, user, response_id, case["resume"], "?stream=true&starting_after=2")
    assert resumed.status_code == 200 and "response.completed" in resumed.text
    fetched = _get(proxy, user, response_id, case["get"])
    assert fetched.status_code == 200
    stream_row, get_row = proxy.rows(f"user_name = '{user}'", expect=2)
    assert (stream_row["operation"], stream_row["output_tokens"]) == ("retrieve_response", 50000)
    assert get_row["output_tokens"] is None
    refused, mark = _create(proxy, user, case["create"])
    assert refused.status_code == 429 and not reached(upstream, mark)
