"""A provider-hosted MCP server is checked wherever a request names it (red-team F102).

The MCP allow-list read hosted servers only in the places a Responses or Messages call, a
Realtime session and a batch name them. An OpenAI Evals run takes Responses tools in
`data_source.sampling_params` (run for every item), Gemini Interactions takes
`tools: [{type: mcp_server, url}]`, and neither is a route the proxy knows: the unlisted server
passed. Every object of an AI request's body is now read for a tools list and `mcp_servers`.
Real mitmdump.
"""

from __future__ import annotations

import json

import pytest

from tests.adversarial.calls import post_marked
from tests.adversarial.calls import reached
from tests.adversarial.wire import marker

POLICY = "mcp:\n  unlisted: block\n  servers:\n    - {id: gh, host: github-mcp.corp.example}\n"
EVALS = "https://api.openai.com/v1/evals/eval_1/runs"
INTERACTIONS = "https://generativelanguage.googleapis.com/v1beta/interactions"


def _eval_run(server: str) -> dict:
    return {"name": "nightly", "data_source": {
        "type": "responses", "model": "gpt-4.1",
        "sampling_params": {"tools": [{"type": "mcp", "server_label": "s", "server_url": server, "require_approval": "never"}]},
        "input_messages": {"type": "template", "template": [{"role": "user", "content": "{{item.q}}"}]},
        "source": {"type": "file_content", "content": [{"item": {"q": "hi"}}]}}}  # fmt: skip


def _interaction(server: str) -> dict:
    return {"model": "gemini-2.5-flash", "input": "hi", "tools": [{"type": "mcp_server", "name": "s", "url": server}]}


def _deep(server: str) -> dict:
    node: dict = {"tools": [{"type": "mcp", "server_label": "s", "server_url": server}]}
    for level in range(10):
        node = {f"level{level}": [node]}
    return {"model": "gpt-4.1", "config": node}


@pytest.mark.parametrize(
    ("url", "body"),
    [(EVALS, _eval_run), (INTERACTIONS, _interaction), ("https://api.openai.com/v1/some/new/endpoint", _deep)],
    ids=["evals-run", "gemini-interactions", "ten-levels-down"],
)
def test_an_unlisted_server_anywhere_is_refused_and_a_listed_one_passes(proxy_with, upstream, url, body):
    proxy = proxy_with(POLICY)
    user = "hosted-any-" + marker()[:6]
    answer, mark = post_marked(proxy, user, json.dumps(body("https://evil-mcp.example/mcp")).encode(), url)
    assert answer.status_code == 403 and "mcp:unlisted" in answer.text and not reached(upstream, mark), answer.text
    listed, mark = post_marked(proxy, user, json.dumps(body("https://github-mcp.corp.example/mcp")).encode(), url)
    assert reached(upstream, mark), listed.text[:300]


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("https://api.openai.com/v1/responses", {"model": "gpt-4.1", "prompt": {"id": "pmpt_abc", "version": "3"}, "input": "hi"}),
        ("https://api.openai.com/v1/chatkit/sessions", {"workflow": {"id": "wf_68df4b13b3588190a09d19288d4610ec0"}, "user": "u1"}),
    ],
    ids=["stored-prompt", "agent-builder-workflow"],
)  # fmt: skip
def test_tools_saved_with_a_prompt_or_workflow_meet_the_unlisted_rule(proxy_with, upstream, url, body):
    """Red-team F113: the tools a stored prompt or a workflow carries are not in the request; under
    `unlisted: block` they are judged as a server no allow-list lists (as the model is judged as
    any model). Under `unlisted: allow` the call passes."""
    answer, mark = post_marked(proxy_with(POLICY), "hosted-ref-" + marker()[:6], json.dumps(body).encode(), url)
    assert answer.status_code == 403 and not reached(upstream, mark), answer.text[:300]
    lenient = proxy_with("mcp:\n  unlisted: allow\n")
    answer, mark = post_marked(lenient, "hosted-ref-ok-" + marker()[:6], json.dumps(body).encode(), url)
    assert reached(upstream, mark), answer.text[:300]


def test_a_prompt_object_deep_in_a_tools_arguments_is_no_stored_prompt(proxy_with, upstream):
    # Only the call's own `prompt` (or a batch line's) is a stored prompt, not an object a tool's
    # arguments or a message happen to hold.
    body = {"model": "gpt-4.1", "input": [{"type": "function_call_output", "call_id": "c1",
            "output": "ok"}], "metadata": {"note": "x"}, "text": {"format": {"type": "text"}},
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {
                "prompt": {"type": "object", "properties": {"id": {"type": "string"}}}}}}]}  # fmt: skip
    body["input"].append({"role": "user", "content": [{"type": "input_text", "text": "hi"}], "prompt": {"id": "x"}})
    answer, mark = post_marked(proxy_with(POLICY), "hosted-deep-" + marker()[:6], json.dumps(body).encode(),
                               "https://api.openai.com/v1/responses")  # fmt: skip
    assert reached(upstream, mark), answer.text[:300]


def test_a_model_by_reference_that_names_no_saved_tools_passes(proxy_with, upstream):
    # Red-team H1: OpenRouter's Auto Router (and a Bedrock profile ARN, an unreadable gRPC model)
    # names a model by reference, not saved tools: an MCP allow-list refused every such call.
    body = {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
    url = ("https://bedrock-runtime.us-east-1.amazonaws.com/model/"
           "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile%2Fabc123/converse")  # fmt: skip
    answer, mark = post_marked(proxy_with(POLICY), "hosted-router-" + marker()[:6], json.dumps(body).encode(), url)
    assert reached(upstream, mark), answer.text[:300]
