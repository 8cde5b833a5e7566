"""Red-team F26: gRPC to Gemini and Vertex (the Vertex SDK's default transport).

A GenerateContent call over gRPC matched no route: its model (field 1 of the request) was never
judged, and a message sent compressed (`grpc-encoding: gzip`, frame flag 1) was opaque to DLP.
The frames are now read as the server reads them: compressed messages inflated and scanned,
the model read from field 1, and a body that is not whole frames, or compressed in a coding the
proxy cannot undo, refused while DLP is on.
"""

from __future__ import annotations

import base64
import gzip

import pytest

from tests.adversarial.wire import marker
from tests.adversarial.wire import protobuf_field

AWS_KEY = "AKIAZ7Q3M5X2R3W4T5YB"
URL = "https://generativelanguage.googleapis.com/google.ai.generativelanguage.v1beta.GenerativeService/GenerateContent"
POLICY = (
    "dlp: {secrets: redact, pii: log}\nrules:\n  - {id: no-pro, match: {model: 'gemini-2.5-pro*'}, action: block}\n"
)


def _field(number: int, value: bytes) -> bytes:
    return bytes([number << 3 | 2, len(value)]) + value  # lengths below 128 in these tests


def _request(model: str, prompt: str) -> bytes:
    part = _field(1, prompt.encode())  # Part.text
    content = _field(1, part) + _field(2, b"user")  # Content.parts, Content.role
    return _field(1, model.encode()) + _field(2, content)  # GenerateContentRequest.model, .contents


def _frame(message: bytes, compressed: bool = False) -> bytes:
    payload = gzip.compress(message) if compressed else message
    return bytes([compressed]) + len(payload).to_bytes(4, "big") + payload


@pytest.fixture(scope="module")
def gate(module_proxy_with):
    return module_proxy_with(POLICY)


def _send(proxy, user: str, body: bytes):
    mark = marker()
    with proxy.client(user) as client:
        answer = client.post(
            URL,
            content=body,
            headers={"content-type": "application/grpc", "grpc-encoding": "gzip", "te": "trailers", "x-attack": mark},
        )
    return answer, mark


def _reached(upstream, mark: str) -> bool:
    return any(s.headers.get("x-attack") == mark for s in upstream.seen)


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_a_key_in_a_grpc_prompt_is_refused(gate, upstream, compressed):
    user = f"grpc-key-{int(compressed)}"
    answer, mark = _send(gate, user, _frame(_request("models/gemini-2.5-flash", f"key {AWS_KEY}"), compressed))
    assert answer.status_code == 403 and not _reached(upstream, mark)
    [row] = gate.rows(f"user_name = '{user}'", expect=1)
    assert (row["model"], row["dlp_action"], row["dlp_findings"]) == (
        "models/gemini-2.5-flash",
        "block",
        "AWS_ACCESS_KEY:1",
    )


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_a_blocked_model_over_grpc_is_refused(gate, upstream, compressed):
    user = f"grpc-model-{int(compressed)}"
    answer, mark = _send(gate, user, _frame(_request("models/gemini-2.5-pro", "hello"), compressed))
    assert answer.status_code == 403 and not _reached(upstream, mark)
    [row] = gate.rows(f"user_name = '{user}'", expect=1)
    assert (row["model"], row["rule_id"]) == ("models/gemini-2.5-pro", "no-pro")


def test_a_grpc_body_the_proxy_cannot_read_fails_closed(gate, upstream):
    message = _request("models/gemini-2.5-flash", f"key {AWS_KEY}")
    snappy_like = bytes([1]) + len(message).to_bytes(4, "big") + message  # flag 1, not deflate
    answer, mark = _send(gate, "grpc-unread", snappy_like)
    assert answer.status_code == 403 and not _reached(upstream, mark)
    answer, mark = _send(gate, "grpc-cut", _frame(message)[:-3])
    assert answer.status_code == 403 and not _reached(upstream, mark)


def test_a_clean_grpc_call_is_forwarded(gate, upstream):
    answer, mark = _send(gate, "grpc-clean", _frame(_request("models/gemini-2.5-flash", "hello"), True))
    assert _reached(upstream, mark)
    [row] = gate.rows("user_name = 'grpc-clean'", expect=1)
    assert (row["model"], row["dlp_findings"]) == ("models/gemini-2.5-flash", None)


def _contents(prompt: str) -> bytes:
    return _field(2, _field(1, _field(1, prompt.encode())) + _field(2, b"user"))


@pytest.mark.parametrize(
    "message",
    [
        _contents("hello") + _field(1, b"models/gemini-2.5-pro"),  # the model after the contents
        # Given twice: protobuf keeps the last, so the server runs pro.
        _field(1, b"models/gemini-2.5-flash") + _contents("hello") + _field(1, b"models/gemini-2.5-pro"),
        _field(3, b"x" * 100) + _contents("hello " * 15) + _field(1, b"models/gemini-2.5-pro"),
    ],
    ids=["model-after-contents", "model-twice-last-wins", "after-other-fields"],
)
def test_a_blocked_model_anywhere_in_the_message_is_refused(gate, upstream, message):
    # The model was read only as the message's first field (red-team F55).
    user = f"grpc-order-{len(message)}"
    answer, mark = _send(gate, user, _frame(message, compressed=True))
    assert answer.status_code == 403 and not _reached(upstream, mark)
    [row] = gate.rows(f"user_name = '{user}'", expect=1)
    assert row["rule_id"] == "no-pro"


def test_a_message_the_proxy_cannot_walk_meets_the_model_rules_as_any_model(proxy_with, upstream):
    # No DLP here, so only the model rule could refuse it: a truncated field hides the model.
    proxy = proxy_with("rules:\n  - {id: no-pro, match: {model: 'gemini-2.5-pro*'}, action: block}\n")
    message = _field(2, b"hello") + b"\x0a\x7f" + b"models/gemini-2.5-pro"  # field 1 says 127 bytes: truncated
    answer, mark = _send(proxy, "grpc-unwalkable", _frame(message))
    assert answer.status_code == 403 and not _reached(upstream, mark)
    [row] = proxy.rows("user_name = 'grpc-unwalkable'", expect=1)
    assert row["rule_id"] == "no-pro"


def test_the_usage_of_a_grpc_answer_is_metered(proxy_with, upstream):
    # The answer's usage metadata (GenerateContentResponse field 3: prompt 1, candidates 2,
    # total 3) was never read: gRPC calls had no tokens and no cost (what the threat model left open).
    usage = protobuf_field(1, 12) + protobuf_field(2, 30) + protobuf_field(3, 142)  # 100 thinking tokens
    candidate = _field(1, _field(1, _field(1, b"hello")))  # Candidate.content.parts[0].text
    answer = _frame(candidate) + _frame(_field(3, usage), compressed=True)  # streamed: usage last
    name = "grpc-usage-" + marker()[:6]
    upstream.cases[name] = {
        "name": name, "host": "generativelanguage.googleapis.com",
        "request": {"method": "POST", "path": URL.split(".com", 1)[1], "query": "", "headers": {}, "body": None},
        "response": {"status": 200, "headers": {"content-type": "application/grpc", "grpc-encoding": "gzip"},
                     "body_text": None, "body_base64": base64.b64encode(answer).decode(), "body_json": None},
    }  # fmt: skip
    try:
        proxy = proxy_with()
        mark = marker()
        with proxy.client("grpc-usage") as client:
            client.post(URL, content=_frame(_request("models/gemini-2.5-flash", "hi")),
                        headers={"content-type": "application/grpc", "te": "trailers", "x-fake-case": name, "x-attack": mark})  # fmt: skip
        [row] = proxy.rows("user_name = 'grpc-usage'", expect=1)
        assert (row["model"], row["input_tokens"], row["output_tokens"]) == ("models/gemini-2.5-flash", 12, 130)
        assert (row["operation"], row["streaming"]) == ("generate_content", False)  # by the gRPC method
    finally:
        upstream.cases.pop(name, None)


def test_vertex_names_its_model_in_field_5(proxy_with, upstream):
    # google.cloud.aiplatform.v1.GenerateContentRequest: `string model = 5` (red-team F72).
    proxy = proxy_with("rules:\n  - {id: no-pro, match: {model: '*gemini-2.5-pro*'}, action: block}\n")
    model = b"projects/p1/locations/us-east5/publishers/google/models/gemini-2.5-pro"
    url = "https://us-east5-aiplatform.googleapis.com/google.cloud.aiplatform.v1.PredictionService/GenerateContent"
    mark = marker()
    with proxy.client("grpc-vertex") as client:
        answer = client.post(url, content=_frame(_contents("hi") + _field(5, model)),
                             headers={"content-type": "application/grpc", "te": "trailers", "x-attack": mark})  # fmt: skip
    assert answer.status_code == 403 and not _reached(upstream, mark)
    [row] = proxy.rows("user_name = 'grpc-vertex'", expect=1)
    assert (row["rule_id"], row["model"]) == ("no-pro", model.decode())


def test_the_gemini_apis_field_5_is_its_tools_not_a_model(proxy_with, upstream):
    # On the Gemini API, GenerateContentRequest field 5 is `tools`: read as a model, a tool made the
    # call unreadable and refused by an unrelated model rule (red-team F87).
    proxy = proxy_with("rules:\n  - {id: no-pro, match: {model: 'gemini-2.5-pro*'}, action: block}\n")
    tool = _field(1, _field(1, b"lookup") + _field(2, bytes(range(128, 188))))  # a function declaration, not UTF-8
    mark = marker()
    with proxy.client("grpc-tools") as client:
        client.post(URL, content=_frame(_field(1, b"models/gemini-2.5-flash") + _contents("hi") + _field(5, tool)),
                    headers={"content-type": "application/grpc", "te": "trailers", "x-attack": mark})  # fmt: skip
    assert _reached(upstream, mark)
    [row] = proxy.rows("user_name = 'grpc-tools'", expect=1)
    assert (row["model"], row["decision"]) == ("models/gemini-2.5-flash", "allow")


def test_vertex_chat_completions_over_grpc_is_judged_as_any_model(proxy_with, upstream):
    # Its model is in the JSON of an http_body the proxy does not read (red-team F89).
    proxy = proxy_with("rules:\n  - {id: no-pro, match: {model: '*gemini-2.5-pro*'}, action: block}\n")
    url = "https://us-east5-aiplatform.googleapis.com/google.cloud.aiplatform.v1.PredictionService/ChatCompletions"
    http_body = _field(2, b'{"model": "google/gemini-2.5-pro"}')
    mark = marker()
    with proxy.client("grpc-vertex-chat") as client:
        answer = client.post(url, content=_frame(_field(1, b"projects/p/locations/l/endpoints/openapi") + _field(2, http_body)),
                             headers={"content-type": "application/grpc", "te": "trailers", "x-attack": mark})  # fmt: skip
    assert answer.status_code == 403 and not _reached(upstream, mark)


def _turns(*turns: tuple[str, ...]) -> bytes:
    """A GenerateContentRequest on gemini-2.5-flash with these turns, each a list of Part texts."""
    contents = b"".join(
        _field(2, b"".join(_field(1, _field(1, text.encode())) for text in parts) + _field(2, b"user"))
        for parts in turns
    )
    return _field(1, b"models/gemini-2.5-flash") + contents


@pytest.mark.parametrize(
    "turns",
    [
        ((AWS_KEY[:10], AWS_KEY[10:]),),
        ((f"my key is {AWS_KEY[:10]}",), (f"{AWS_KEY[10:]} ok",)),
        ((AWS_KEY[:5], AWS_KEY[5:10], AWS_KEY[10:15], AWS_KEY[15:]),),  # four parts (red-team F123)
    ],
    ids=["two-parts", "two-turns", "four-parts"],
)
def test_a_key_cut_across_grpc_parts_or_turns_is_refused(gate, upstream, turns):
    """Red-team F112: each protobuf string was scanned alone; the REST call with the same parts is
    refused (its prompt strings are joined)."""
    user = "grpc-split-" + marker()[:6]
    answer, mark = _send(gate, user, _frame(_turns(*turns)))
    assert answer.status_code == 403 and not _reached(upstream, mark), answer.text[:200]
    [row] = gate.rows(f"user_name = '{user}'", expect=1)
    assert "AWS_ACCESS_KEY:1" in row["dlp_findings"]


def test_ordinary_grpc_turns_pass(gate, upstream):
    user = "grpc-turns-" + marker()[:6]
    turns = (("Summarise the report", "in three bullet points"), ("Shorter, please",), ("And in French",))
    answer, mark = _send(gate, user, _frame(_turns(*turns)))
    assert _reached(upstream, mark), answer.text[:200]


VERTEX_GRPC = "https://us-east5-aiplatform.googleapis.com/google.cloud.aiplatform.v1.PredictionService/"
FLASH = b"projects/p/locations/us-east5/publishers/google/models/gemini-2.5-flash"


def _post_grpc(proxy, user: str, url: str, message: bytes):
    mark = marker()
    with proxy.client(user) as client:
        answer = client.post(url, content=_frame(message),
                             headers={"content-type": "application/grpc", "te": "trailers", "x-attack": mark})  # fmt: skip
    return answer, mark


@pytest.mark.parametrize(
    ("fields", "allowed"),
    [((1, 3), True), ((1,), True), ((3,), True), ((1, 3, "pro"), False)],
    ids=["endpoint-and-model", "endpoint", "model", "pro-in-field-3"],
)
def test_vertex_count_tokens_names_its_model_in_fields_1_and_3(proxy_with, upstream, fields, allowed):
    # google.cloud.aiplatform.v1.CountTokensRequest: endpoint = 1, model = 3, contents = 4. Field 5
    # was read, found empty, and the count was refused as a call of any model (round-6b G14).
    proxy = proxy_with("rules:\n  - {id: no-pro, match: {model: '*gemini-2.5-pro*'}, action: block}\n")
    pro = FLASH.replace(b"flash", b"pro")
    message = b"".join(_field(f, FLASH) for f in fields if f != "pro") + _field(4, _field(1, b"user"))
    if "pro" in fields:
        message += _field(3, pro)
    user = "grpc-count-" + "-".join(map(str, fields))
    answer, mark = _post_grpc(proxy, user, VERTEX_GRPC + "CountTokens", message)
    assert _reached(upstream, mark) is allowed, answer.text[:200]
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert (row["operation"], row["model"]) == ("count_tokens", (pro if "pro" in fields else FLASH).decode())


def test_a_vertex_tuned_endpoint_over_grpc_is_its_model(proxy_with, upstream):
    # A tuned Gemini is called by its endpoint (GenerativeModel("projects/.../endpoints/ID")): it was
    # "a gRPC call whose model the proxy cannot find" and refused by an unrelated rule (round-6b G7).
    proxy = proxy_with("rules:\n  - {id: no-pro, match: {model: '*gemini-2.5-pro*'}, action: block}\n")
    endpoint = b"projects/acme/locations/us-east5/endpoints/1234567890"
    answer, mark = _post_grpc(
        proxy, "grpc-tuned", VERTEX_GRPC + "GenerateContent", _contents("hi") + _field(5, endpoint)
    )
    assert _reached(upstream, mark), answer.text[:200]
    [row] = proxy.rows("user_name = 'grpc-tuned'", expect=1)
    assert (row["model"], row["decision"]) == (endpoint.decode(), "allow")
    # Judged by that name: a rule on it holds.
    proxy = proxy_with("rules:\n  - {id: no-tuned, match: {model: '*/endpoints/1234567890'}, action: block}\n")
    answer, mark = _post_grpc(proxy, "grpc-tuned-2", VERTEX_GRPC + "GenerateContent", _field(5, endpoint))
    assert answer.status_code == 403 and not _reached(upstream, mark)


def _batch(model: bytes, requests: int) -> bytes:
    """BatchGenerateContentRequest{batch: GenerateContentBatch{model, display_name, input_config{requests{
    requests: InlinedRequest{request: GenerateContentRequest}}}}} (the REST shape's nesting)."""
    request = (
        protobuf_field(1, model)
        + protobuf_field(2, protobuf_field(1, protobuf_field(1, b"q")) + protobuf_field(2, b"user"))
        + protobuf_field(4, protobuf_field(4, 65000))
    )
    inlined = b"".join(protobuf_field(1, protobuf_field(1, request)) for _ in range(requests))
    return protobuf_field(
        2,
        protobuf_field(1, model)
        + protobuf_field(3, b"nightly")
        + protobuf_field(4, protobuf_field(2, protobuf_field(1, inlined))),
    )


BATCH_URL = URL.replace("/GenerateContent", "/BatchGenerateContent")


def test_a_grpc_batch_is_judged_by_its_models(proxy_with, upstream):
    # BatchGenerateContent was a method the proxy did not know: its model (inside the batch) was
    # never read, and a gemini-2.5-pro block passed (red-team F111).
    proxy = proxy_with("rules:\n  - {id: no-pro, match: {model: '*gemini-2.5-pro*'}, action: block}\n")
    answer, mark = _post_grpc(proxy, "grpc-batch-pro", BATCH_URL, _batch(b"models/gemini-2.5-pro", 20))
    assert answer.status_code == 403 and not _reached(upstream, mark)
    [row] = proxy.rows("user_name = 'grpc-batch-pro'", expect=1)
    assert (row["rule_id"], row["model"], row["operation"]) == ("no-pro", "models/gemini-2.5-pro", "create_batch")
    answer, mark = _post_grpc(proxy, "grpc-batch-flash", BATCH_URL, _batch(b"models/gemini-2.5-flash", 20))
    assert _reached(upstream, mark), answer.text[:200]


def test_a_grpc_batch_has_no_bound_under_a_token_budget(proxy_with, upstream):
    # Its requests' output caps are not read: what it may spend has no bound (red-team F111).
    proxy = proxy_with("budgets:\n  - {id: daily, per: user, tokens_per_day: 100000}\n")
    answer, mark = _post_grpc(proxy, "grpc-batch-budget", BATCH_URL, _batch(b"models/gemini-2.5-flash", 200))
    assert answer.status_code == 429 and not _reached(upstream, mark)
    [row] = proxy.rows("user_name = 'grpc-batch-budget'", expect=1)
    assert row["rule_id"] == "daily"


def test_an_unknown_grpc_method_without_a_model_is_judged_as_any_model(proxy_with, upstream):
    # A method the proxy does not know may run a model it cannot see (red-team F111); one that
    # only reads or lists resources runs none.
    proxy = proxy_with("rules:\n  - {id: no-pro, match: {model: '*gemini-2.5-pro*'}, action: block}\n")
    answer, mark = _post_grpc(
        proxy, "grpc-unknown", URL.replace("/GenerateContent", "/GenerateSomethingNew"), _contents("hi")
    )
    assert answer.status_code == 403 and not _reached(upstream, mark)
    answer, mark = _post_grpc(
        proxy, "grpc-list", URL.replace("GenerativeService/GenerateContent", "ModelService/ListModels"), b""
    )
    assert _reached(upstream, mark), answer.text[:200]
    # A service that manages resources (Vertex's endpoints, models) runs no model: not judged.
    deploy = VERTEX_GRPC.replace("PredictionService", "EndpointService") + "DeployModel"
    answer, mark = _post_grpc(proxy, "grpc-deploy", deploy, _field(1, b"projects/p/locations/l/endpoints/1"))
    assert _reached(upstream, mark), answer.text[:200]


def test_a_vertex_custom_model_endpoint_over_grpc_is_its_model(proxy_with, upstream):
    # PredictionService/Predict names its endpoint in field 1: the model, judged by that name.
    proxy = proxy_with("rules:\n  - {id: no-pro, match: {model: '*gemini-2.5-pro*'}, action: block}\n")
    endpoint = b"projects/acme/locations/us-east5/endpoints/987"
    answer, mark = _post_grpc(proxy, "grpc-predict", VERTEX_GRPC + "Predict", _field(1, endpoint))
    assert _reached(upstream, mark), answer.text[:200]
    [row] = proxy.rows("user_name = 'grpc-predict'", expect=1)
    assert row["model"] == endpoint.decode()
