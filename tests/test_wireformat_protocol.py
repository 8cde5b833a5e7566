"""What every wire-format parser answers for the rest of the proxy: prompt text (DLP, capture),
streamed text deltas (reversible DLP), its error envelope (Act) and its gateway route (redirects)."""

from __future__ import annotations

import json

import pytest
from mitmproxy.http import Headers

from shadowgate.config.policy import DlpPolicy
from shadowgate.demo.fakeupstream import case_body
from shadowgate.demo.fakeupstream import load_cases
from shadowgate.dlp import Placeholders
from shadowgate.stages.act import api_error
from shadowgate.stages.redact import scan_json
from shadowgate.stages.redact import shared_scanner
from shadowgate.wireformats import PARSERS
from shadowgate.wireformats import PROMPT_KEYS
from shadowgate.wireformats import SYSTEM_KEYS
from shadowgate.wireformats import prompt_strings
from shadowgate.wireformats.base import Route
from shadowgate.wireformats.common import NESTED_MODELS_MAX
from shadowgate.wireformats.common import TOO_MANY_MODELS
from shadowgate.wireformats.common import nested_models
from shadowgate.wireformats.common import router_header_models
from shadowgate.wireformats.framing import framing_for
from shadowgate.wireformats.unknown import unknown_endpoint_facts

CASES = load_cases()
EMAIL = "jane.doe@example.com"


def scan(body):
    return scan_json(body, shared_scanner(), Placeholders(), DlpPolicy())


# --------------------------------------------------------------------------- prompt text


@pytest.mark.parametrize(
    "body, path",
    [
        (
            {"inputs": [{"content": [{"type": "text", "text": f"to {EMAIL}"}]}], "input_type": "x"},
            ("inputs", 0, "content", 0, "text"),
        ),
        ({"inputText": f"write to {EMAIL}"}, ("inputText",)),  # Amazon Titan on Bedrock InvokeModel
        ({"query": "q", "documents": [f"owner {EMAIL}"]}, ("documents", 0)),  # Cohere Rerank
    ],
)
def test_every_formats_prompt_fields_are_scanned(body, path):
    cleaned, counts, _ = scan(body)
    value = cleaned
    for key in path:
        value = value[key]
    assert EMAIL not in json.dumps(cleaned) and "[EMAIL_1]" in value and counts["EMAIL"] == 1


def test_structure_and_media_are_not_text():
    body = {
        "model": EMAIL,  # not prompt text: a model id is never rewritten
        "messages": [{"role": "user", "name": EMAIL, "content": [{"type": "image_url", "image_url": {"url": EMAIL}}]}],
    }
    assert list(prompt_strings(body)) == []
    cleaned, counts, _ = scan(body)
    assert cleaned == body and not counts


def test_the_scan_leaves_its_input_alone_and_shares_untouched_parts():
    tools = [{"type": "function", "function": {"name": "f", "parameters": {}}}]
    body = {"messages": [{"role": "user", "content": f"hi {EMAIL}"}], "tools": tools}
    cleaned, _, _ = scan(body)
    assert body["messages"][0]["content"] == f"hi {EMAIL}"  # Identify's parse is not changed
    assert cleaned["messages"][0]["content"] == "hi [EMAIL_1]" and cleaned["tools"] is tools


def test_prompt_keys_cover_the_keys_dlp_scanned_before_and_system_keys_are_prompt_keys():
    before = {"content", "text", "prompt", "input", "system", "instructions", "query", "message", "preamble",
              "arguments", "output", "messages", "contents", "parts", "systemInstruction", "system_instruction"}  # fmt: skip
    assert before <= PROMPT_KEYS
    for wire in PARSERS.values():
        assert wire.prompt_keys and wire.system_keys <= wire.prompt_keys, wire.id
    assert SYSTEM_KEYS <= PROMPT_KEYS


@pytest.mark.parametrize("name", sorted(CASES))
def test_dlp_scans_all_the_prompt_text_metering_counts(name):
    """What a parser counts as prompt characters is text its prompt_strings yields (and DLP scans)."""
    case = CASES[name]
    wire, body = PARSERS[case["parser"]], case["request"]["body"]
    facts = wire.parse_request(Route(case["wire_format"], case["parser"], "chat"), {}, body)
    own = list(wire.prompt_strings(body))
    assert sum(len(text) for _, text in own) >= facts.prompt_chars
    assert set(own) <= set(prompt_strings(body))  # the format's own text is in what DLP scans
    for path, text in own:  # and every path leads to its string
        value = body
        for key in path:
            value = value[key]
        assert value == text


# --------------------------------------------------------------------------- streamed text

STREAMED_TEXT = {
    "anthropic-messages-stream": "Hello! How can I help? ✨",
    "bedrock-converse-stream": "Hello! How can I help you today? éè",
    "cohere-chat-stream": "Bonjour le monde !",
    "gemini-stream-sse": "Spain won UEFA Euro 2024, beating England 2–1 in the final in Berlin on 14 July 2024.\n",
    "ollama-chat-stream": "The sky looks blue because air scatters blue light most.",
    "openai-chat-stream-usage": "Hi there! How can I help you today?",
    "openai-responses-stream": "Bonjour !",
}


@pytest.mark.parametrize("name", sorted(STREAMED_TEXT))
def test_text_deltas_are_the_answer_text(name):
    case = CASES[name]
    wire = PARSERS[case["parser"]]
    headers = {k.lower(): v for k, v in case["response"]["headers"].items()}
    framing = framing_for(headers, wire.default_framing)
    frames = framing.feed(case_body(case)) + framing.finish()
    text = "".join(d.container[d.key] for f in frames for d in wire.text_deltas(f.data))
    assert text == STREAMED_TEXT[name]


@pytest.mark.parametrize("parser", sorted(PARSERS))
@pytest.mark.parametrize("junk", [None, 3, "x", [], {"choices": 3}, {"delta": []}, {"candidates": [{"content": 1}]}])
def test_text_deltas_never_raise_on_junk(parser, junk):
    assert list(PARSERS[parser].text_deltas(junk)) == []


# --------------------------------------------------------------------------- errors and gateway routes


@pytest.mark.parametrize("parser", sorted(PARSERS))
@pytest.mark.parametrize("status", [403, 429, 503])
def test_each_format_reads_its_own_refusal_as_an_error(parser, status):
    """The refusal Act sends is an error envelope the format's own parser (so its SDK) recognises."""
    response = api_error(parser, status, "shadowgate: blocked", retry_after=60 if status == 429 else None)
    headers = dict(response.headers)
    facts = PARSERS[parser].parse_response(headers, json.loads(response.content))
    assert facts.error_type is not None
    assert "shadowgate: blocked" in response.text and headers["content-type"] == "application/json"


def test_error_shapes_the_sdks_expect():
    assert json.loads(api_error("anthropic-messages", 429, "m").content) == {
        "type": "error", "error": {"type": "rate_limit_error", "message": "m"}}  # fmt: skip
    assert json.loads(api_error("gemini", 403, "m").content)["error"]["status"] == "PERMISSION_DENIED"
    assert api_error("bedrock-converse", 429, "m").headers["x-amzn-errortype"] == "ThrottlingException"
    assert json.loads(api_error(None, 403, "m").content)["error"]["code"] == "shadowgate_policy"  # unknown: OpenAI's


@pytest.mark.parametrize(
    "parser, operation, expected",
    [
        ("openai-chat", "chat", ("openai", "/chat/completions", None)),
        ("openai-chat", "text_completion", ("openai", "/completions", None)),
        ("openai-responses", "chat", ("openai", "/responses", None)),
        ("openai-embeddings", "embeddings", ("openai", "/embeddings", None)),
        ("anthropic-messages", "chat", ("anthropic", "/v1/messages", "x-api-key")),
        ("anthropic-messages", "count_tokens", ("anthropic", "/v1/messages/count_tokens", "x-api-key")),
        ("gemini", "generate_content", None),
        ("bedrock-converse", "chat", None),
        ("cohere-v2", "embeddings", None),
        ("ollama", "chat", None),
    ],
)
def test_gateway_routes(parser, operation, expected):
    route = PARSERS[parser].gateway_route(Route("x", parser, operation))
    assert (None if route is None else (route.api, route.path, route.key_header)) == expected


# --------------------------------------------------------------------------- models named elsewhere


def test_nested_models_reads_every_depth_once_and_stops_at_its_limit():
    body = [{"query": {"model": "a"}}, {"targets": [{"override_params": {"model": "b"}}, {"model": "a"}]}]
    assert nested_models(body) == ("a", "b")
    deep: dict = {"model": "x"}
    for _ in range(5000):  # deeper than Python's recursion limit: walked, not recursed
        deep = {"next": deep}
    assert nested_models(deep) == ("x",)
    many = [{"model": f"m{i}"} for i in range(100)]
    assert len(nested_models(many, limit=10)) == 10


def test_router_header_models_reads_each_repeated_header():
    headers = Headers(
        [
            (b"x-portkey-config", b'{"override_params": {"model": "gpt-4o"}}'),
            (b"X-Portkey-Config", b'{"targets": [{"override_params": {"model": "o3"}}]}'),
        ]
    )
    assert router_header_models(headers) == (("gpt-4o", "o3"), None)
    # A saved config's id (or a config that does not parse) names its models by reference.
    assert router_header_models(Headers(x_portkey_config="pc-abc123")) == (
        (),
        "the gateway config 'pc-abc123' (x-portkey-config)",
    )
    assert router_header_models({"x-portkey-config": "{not json"})[1] is not None
    assert router_header_models({}) == ((), None)


CHAT_LINE = {"method": "POST", "url": "/v1/chat/completions"}  # a batch line names both (F93)


def test_a_batch_files_models_are_read_from_its_lines():
    parser = PARSERS["openai-files"]
    lines = "\n".join(
        [
            json.dumps({"custom_id": "1", **CHAT_LINE, "body": {"model": "gpt-4.1"}}),
            "not json",
            json.dumps({"custom_id": "2", **CHAT_LINE, "body": {"model": "o3"}}) + "\r",
            json.dumps({"custom_id": "3", **CHAT_LINE, "body": {"model": "gpt-4o"}})
            + "\u2028"
            + json.dumps({**CHAT_LINE, "body": {"model": "x"}}),
        ]
    )
    body = (
        '--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        '--b\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n' + lines + "\r\n--b--\r\n"
    ).encode()
    # A lenient reader splits at U+2028 as well: both readings' models are judged.
    batch = parser.batch_in_body(body, "multipart/form-data; boundary=b")
    assert batch is not None and batch.other_models == ("gpt-4.1", "o3", "gpt-4o", "x")
    assert batch.output_cap == 4 * 1024  # four requests, none naming a cap
    unsplittable = parser.batch_in_body(b"--b\r\nbroken", "multipart/form-data; boundary=b")
    assert unsplittable is not None and unsplittable.model_reference is not None  # judged as any model (F78)
    assert PARSERS["openai-chat"].batch_in_body(body, "multipart/form-data; boundary=b") is None


def test_a_body_naming_more_models_than_are_read_is_judged_as_any_model():
    # The 65th model of 64 went unjudged (red-team F63): past the limit, the rest could be anything.
    targets = [{"override_params": {"model": f"m{i}"}} for i in range(NESTED_MODELS_MAX + 1)]
    assert router_header_models({"x-portkey-config": json.dumps({"targets": targets})})[1] == TOO_MANY_MODELS
    assert unknown_endpoint_facts({"requests": targets}).model_reference == TOO_MANY_MODELS
    assert unknown_endpoint_facts({"requests": targets[:3]}).model_reference is None
