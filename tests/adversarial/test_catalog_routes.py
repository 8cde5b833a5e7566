"""Requests the catalog did not place: a host it did not list, or a route no wire format had.

Each was passed undecrypted (a Vertex AI region the catalog did not list, red-team F100), recorded
without its model (a model in a path, F97, round-6b G21; a model by reference, F95, F98), or
without its tokens (an endpoint no route knew: G6, G7, G24), and a batch input file off
api.openai.com was never read (F105), while a dataset line naming a model was judged as a batch
request (G10). A model by reference (an agent, a stored prompt, a Bedrock ARN of another kind) is
judged as any model: a block rule it could meet refuses it.
"""

from __future__ import annotations

import json

import pytest

from shadowgate.config.catalog import load_catalog
from shadowgate.config.yamlfile import ConfigError
from shadowgate.wireformats import PARSERS
from tests.adversarial.calls import fake_answer
from tests.adversarial.calls import post_marked
from tests.adversarial.calls import reached
from tests.adversarial.wire import marker
from tests.conftest import ROOT

RULES = """
rules:
  - {id: no-gpt4o, match: {model: 'gpt-4o*'}, action: block}
  - {id: no-opus, match: {model: '*claude-opus*'}, action: block}
  - {id: no-image, match: {model: 'gpt-image-1*'}, action: block}
  - {id: no-mistral-large, match: {model: 'mistral-large*'}, action: block}
  - {id: no-pro, match: {model: '*gemini-2.5-pro*'}, action: block}
  - {id: no-codestral-old, match: {model: 'codestral-2405*'}, action: block}
  - {id: no-copilot-codex, match: {model: 'copilot-codex*'}, action: block}
"""
GEMINI_BODY = json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}).encode()
AZURE = "https://acme-eastus.openai.azure.com"


@pytest.fixture(scope="module")
def gate(module_proxy_with):
    return module_proxy_with(RULES)


def _row(proxy, user: str) -> dict:
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    return row


def _refused(proxy, upstream, user: str, body: bytes, url: str, **kwargs) -> dict:
    answer, mark = post_marked(proxy, user, body, url, **kwargs)
    assert answer.status_code in (403, 429), answer.text[:200]
    assert not reached(upstream, mark)
    return _row(proxy, user)


def test_a_vertex_region_the_catalog_did_not_list_is_decrypted_and_judged(proxy_with, upstream):
    # The SDKs build {location}-aiplatform.googleapis.com from the caller's location; europe-west8
    # was not listed: passed undecrypted, no row, a vertex-ai block never applied (red-team F100).
    proxy = proxy_with("rules:\n  - {id: no-vertex, match: {provider: vertex-ai}, action: block}\n")
    url = ("https://europe-west8-aiplatform.googleapis.com/v1/projects/p/locations/europe-west8"
           "/publishers/google/models/gemini-2.5-flash:generateContent")  # fmt: skip
    row = _refused(proxy, upstream, "vertex-region", GEMINI_BODY, url)
    assert (row["provider"], row["rule_id"]) == ("vertex-ai", "no-vertex")


def test_every_google_cloud_region_is_a_vertex_host():
    # Exact names only: a look-alike under another domain is no Vertex host.
    catalog = load_catalog(known_parsers=PARSERS)
    for region in ("europe-west8", "europe-central2", "asia-northeast3", "me-west1", "southamerica-east1"):
        assert getattr(catalog.match_host(f"{region}-aiplatform.googleapis.com"), "id", None) == "vertex-ai"
    for host in ("europe-west8-aiplatform.googleapis.com.evil.example", "evil-aiplatform.googleapis.com"):
        assert catalog.match_host(host) is None


def test_azure_openai_on_its_regional_multi_service_endpoint_is_judged(proxy_with, upstream):
    # An account made without a custom subdomain answers on {region}.api.cognitive.microsoft.com,
    # shared with the other Azure AI services: its /openai/ paths passed unseen (red-team F100).
    proxy = proxy_with("rules:\n  - {id: no-azure, match: {provider: azure-openai}, action: block}\n")
    host = "https://eastus.api.cognitive.microsoft.com"
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode()
    url = f"{host}/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21"
    row = _refused(proxy, upstream, "azure-regional", body, url, headers={"api-key": "k"})
    assert (row["provider"], row["model"], row["rule_id"]) == ("azure-openai", "gpt-4o", "no-azure")
    # The host's other services are not Azure OpenAI: passed, no row.
    answer, mark = post_marked(proxy, "azure-regional-speech", b"{}", f"{host}/sts/v1.0/issueToken")
    assert reached(upstream, mark), answer.text[:200]
    assert proxy.rows("user_name = 'azure-regional-speech'", expect=0) == []


def test_shared_hosts_need_paths(tmp_path):
    entry = ("  - {id: x, name: X, vendor: X, category: api, hosts: [x.example], shared_hosts: [y.example],"
             " source: 'https://x.example/docs', verified: 2026-01-01}\n")  # fmt: skip
    text = (ROOT / "providers.yaml").read_text()
    catalog = tmp_path / "providers.yaml"
    catalog.write_text(text.replace("providers:\n", "providers:\n" + entry, 1))
    with pytest.raises(ConfigError, match="shared_hosts"):
        load_catalog(catalog, known_parsers=PARSERS)
    catalog.write_text(
        text.replace("providers:\n", "providers:\n" + entry.replace("shared_hosts", "paths: [/ai/], shared_hosts"), 1)
    )
    found = load_catalog(catalog, known_parsers=PARSERS)
    assert found.match("x.example", "/other").id == "x"  # its hosts are wholly its own
    assert found.match("y.example", "/ai/chat").id == "x" and found.match("y.example", "/other") is None


def test_a_vertex_tuned_endpoint_over_rest_is_metered(gate, upstream):
    # POST .../endpoints/{id}:generateContent matched no route: no model, operation or tokens (round-6b G7).
    url = "https://us-central1-aiplatform.googleapis.com/v1/projects/acme/locations/us-central1/endpoints/1234:generateContent"
    answer, mark = post_marked(
        gate, "vertex-tuned", GEMINI_BODY, url, headers={"x-fake-case": "vertex-gemini-generate"}
    )
    assert answer.status_code == 200 and reached(upstream, mark)
    row = _row(gate, "vertex-tuned")
    assert (row["model"], row["operation"]) == (
        "projects/acme/locations/us-central1/endpoints/1234",
        "generate_content",
    )
    assert row["input_tokens"] and row["output_tokens"]


@pytest.mark.parametrize(
    ("user", "url", "body", "model", "operation"),
    [
        # Anthropic's OpenAI SDK compatibility endpoint (round-6b G24).
        ("anthropic-openai", "https://api.anthropic.com/v1/chat/completions",
         {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}, "claude-sonnet-4-5", "chat"),
        # Codestral fill-in-the-middle (round-6b G6).
        ("codestral-fim", "https://codestral.mistral.ai/v1/fim/completions",
         {"model": "codestral-latest", "prompt": "def f(", "suffix": "return x"}, "codestral-latest", "text_completion"),
        # Copilot inline completions name the model in the path (round-6b G21).
        ("copilot-inline", "https://copilot-proxy.githubusercontent.com/v1/engines/gpt-41-copilot/completions",
         {"prompt": "def f(", "suffix": "", "max_tokens": 500}, "gpt-41-copilot", "text_completion"),
    ],
    ids=["anthropic-openai-compatible", "codestral-fim", "copilot-inline"],
)  # fmt: skip
def test_a_route_the_catalog_did_not_have_is_metered(gate, upstream, user, url, body, model, operation):
    answer, mark = post_marked(
        gate, user, json.dumps(body).encode(), url, headers={"x-fake-case": "openai-completions-legacy"}
    )
    assert answer.status_code == 200 and reached(upstream, mark), answer.text[:200]
    row = _row(gate, user)
    assert (row["model"], row["operation"]) == (model, operation)
    assert row["input_tokens"] and row["output_tokens"]


@pytest.mark.parametrize(
    ("user", "url", "body", "rule"),
    [
        ("copilot-path-model", "https://api.githubcopilot.com/v1/engines/copilot-codex/completions",
         {"prompt": "def f(", "max_tokens": 50}, "no-copilot-codex"),
        ("codestral-old", "https://codestral.mistral.ai/v1/fim/completions",
         {"model": "codestral-2405", "prompt": "def f("}, "no-codestral-old"),
        # Azure OpenAI media deployments: the deployment is the model (red-team F97).
        ("azure-image", f"{AZURE}/openai/deployments/gpt-image-1/images/generations?api-version=2025-04-01-preview",
         {"prompt": "a cat", "quality": "high"}, "no-image"),
        ("azure-speech", f"{AZURE}/openai/deployments/gpt-4o-mini-tts/audio/speech?api-version=2025-03-01-preview",
         {"input": "hello", "voice": "alloy"}, "no-gpt4o"),
        ("azure-other-deployment", f"{AZURE}/openai/deployments/gpt-4o/extensions/chat/completions?api-version=2023-08-01-preview",
         {"messages": [{"role": "user", "content": "hi"}]}, "no-gpt4o"),
        # Databricks Foundation Model APIs' REST call (red-team F97).
        ("databricks-invocations", "https://acme-ws.cloud.databricks.com/serving-endpoints/databricks-claude-opus-4-1/invocations",
         {"messages": [{"role": "user", "content": "hi"}]}, "no-opus"),
    ],
    ids=["copilot-engines", "codestral-fim", "azure-image", "azure-speech", "azure-deployment-unknown-route", "databricks"],
)  # fmt: skip
def test_a_model_named_by_a_new_route_meets_its_rule(gate, upstream, user, url, body, rule):
    assert _refused(gate, upstream, user, json.dumps(body).encode(), url)["rule_id"] == rule


def test_an_azure_transcription_deployment_meets_its_rule(gate, upstream):
    files = {"file": ("a.wav", b"RIFF0000WAVE", "audio/wav")}
    mark = marker()
    with gate.client("azure-transcribe") as client:
        answer = client.post(f"{AZURE}/openai/deployments/gpt-4o-transcribe/audio/transcriptions?api-version=2025-03-01-preview",
                             files=files, headers={"api-key": "k", "x-attack": mark})  # fmt: skip
    assert answer.status_code == 403 and not reached(upstream, mark)
    assert _row(gate, "azure-transcribe")["rule_id"] == "no-gpt4o"


def _batch_file(model: str, lines: int = 20, **body) -> bytes:
    return "\n".join(json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/chat/completions",
                                 "body": {"model": model, "messages": [{"role": "user", "content": "q"}], **body}})
                     for i in range(lines)).encode()  # fmt: skip


def _upload(proxy, user: str, url: str, data: bytes, purpose: str = "batch"):
    mark = marker()
    with proxy.client(user) as client:
        answer = client.post(url, files={"file": ("b.jsonl", data, "application/jsonl")}, data={"purpose": purpose},
                             headers={"authorization": "Bearer sk-test", "x-attack": mark})  # fmt: skip
    return answer, mark


@pytest.mark.parametrize(
    "url",
    [
        f"{AZURE}/openai/files?api-version=2024-10-21",
        f"{AZURE}/openai/v1/files",
        "https://api.groq.com/openai/v1/files",
    ],
    ids=["azure", "azure-v1", "groq"],
)
def test_a_batch_input_file_off_openai_is_read(gate, proxy_with, upstream, url):
    # Only api.openai.com's uploads were read: a gpt-4o batch passed a gpt-4o block (red-team F105).
    user = "batch-file-" + str(abs(hash(url)) % 10**8)
    answer, mark = _upload(gate, user, url, _batch_file("gpt-4o-batch"))
    assert answer.status_code == 403 and not reached(upstream, mark)
    assert _row(gate, user)["rule_id"] == "no-gpt4o"
    # And bounded: 200 x 32 000 tokens do not fit a 100 000-token budget.
    proxy = proxy_with("budgets:\n  - {id: daily, per: user, tokens_per_day: 100000}\n")
    answer, mark = _upload(proxy, "batch-bound", url, _batch_file("gpt-4.1", 200, max_tokens=32000))
    assert answer.status_code == 429 and not reached(upstream, mark)


def test_a_batch_file_of_custom_id_and_body_lines_is_bounded(proxy_with, upstream):
    # Together's and Mistral's batch lines carry no method or URL: they were judged but never
    # charged (red-team F105).
    proxy = proxy_with("budgets:\n  - {id: daily, per: user, tokens_per_day: 100000}\n")
    lines = [{"custom_id": f"r{i}", "body": {"model": "meta-llama/Llama-3.3-70B-Instruct-Turbo", "max_tokens": 32000,
                                             "messages": [{"role": "user", "content": "q"}]}} for i in range(200)]  # fmt: skip
    answer, mark = _upload(proxy, "batch-together", "https://api.together.xyz/v1/files",
                           "\n".join(json.dumps(line) for line in lines).encode(), "batch-api")  # fmt: skip
    assert answer.status_code == 429 and not reached(upstream, mark), answer.text[:200]


@pytest.mark.parametrize("purpose", ["user_data", "fine-tune"])
def test_dataset_lines_naming_a_model_are_no_batch(gate, upstream, purpose):
    # An exported log (a model named on each line, no request body) was judged as batch requests
    # and refused by a gpt-4o block (round-6b G10).
    lines = [{"model": "gpt-4o-2024-08-06", "messages": [{"role": "user", "content": f"q{i}"}]} for i in range(5)]
    answer, mark = _upload(gate, f"dataset-{purpose}", "https://api.openai.com/v1/files",
                           "\n".join(json.dumps(line) for line in lines).encode(), purpose)  # fmt: skip
    assert reached(upstream, mark), answer.text[:200]
    assert _row(gate, f"dataset-{purpose}")["decision"] == "allow"


BEDROCK = "https://bedrock-runtime.us-east-1.amazonaws.com/model/{}/converse"
CONVERSE = json.dumps({"messages": [{"role": "user", "content": [{"text": "hi"}]}]}).encode()


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:bedrock:us-east-1:123456789012:prompt/PROMPT12345",
        "arn:aws:bedrock:us-east-1:123456789012:prompt/PROMPT12345:1",
        "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123",
        "arn:aws:bedrock:us-east-1:123456789012:prompt-router/abc123xyz",
    ],
    ids=["prompt", "prompt-version", "application-profile", "prompt-router"],
)
def test_a_bedrock_model_by_reference_is_judged_as_any_model(gate, upstream, arn):
    # A prompt's, a profile's or a router's model is not in the call (red-team F95).
    user = "bedrock-ref-" + str(abs(hash(arn)) % 10**8)
    escaped = arn.replace(":", "%3A").replace("/", "%2F")
    _refused(gate, upstream, user, CONVERSE, BEDROCK.format(escaped))


@pytest.mark.parametrize(
    "model",
    ["anthropic.claude-3-5-haiku-20241022-v1:0", "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0",
     "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0"],
    ids=["id", "foundation-model-arn", "system-profile-arn"],
)  # fmt: skip
def test_a_bedrock_model_by_name_passes(gate, upstream, model):
    user = "bedrock-name-" + str(abs(hash(model)) % 10**8)
    answer, mark = post_marked(gate, user, CONVERSE, BEDROCK.format(model.replace(":", "%3A").replace("/", "%2F")))
    assert reached(upstream, mark), answer.text[:200]


@pytest.mark.parametrize(
    ("url", "body"),
    [
        ("https://api.mistral.ai/v1/agents/completions", {"agent_id": "ag:1234", "messages": [{"role": "user", "content": "hi"}]}),
        ("https://api.mistral.ai/v1/conversations", {"agent_id": "ag:1234", "inputs": "hi"}),
        ("https://generativelanguage.googleapis.com/v1beta/interactions", {"agent": "deep-research-pro-preview-12-2025", "input": "hi"}),
        ("https://bedrock-agent-runtime.us-east-1.amazonaws.com/agents/AGENT1/agentAliases/ALIAS1/sessions/s1/text", {"inputText": "hi"}),
        ("https://bedrock-agent-runtime.us-east-1.amazonaws.com/flows/FLOW1/aliases/ALIAS1", {"inputs": [{"content": {"document": "hi"}}]}),
        ("https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/reasoningEngines/42:query", {"input": {"q": "hi"}}),
    ],
    ids=["mistral-agent", "mistral-conversation", "gemini-interaction", "bedrock-agent", "bedrock-flow", "vertex-agent-engine"],
)  # fmt: skip
def test_an_agent_by_id_is_judged_as_any_model(gate, upstream, url, body):
    # The agent runs a model set where it was made: the call names none (red-team F98).
    user = "agent-" + str(abs(hash(url)) % 10**8)
    row = _refused(gate, upstream, user, json.dumps(body).encode(), url)
    assert row["decision"] == "block"


@pytest.mark.parametrize(
    ("path", "body", "case"),
    [
        ("google-ai-studio/v1beta/models/gemini-2.5-flash:generateContent", GEMINI_BODY, "gemini-generate-thinking-cached"),
        ("google-vertex-ai/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash:generateContent",
         GEMINI_BODY, "gemini-generate-thinking-cached"),
        ("aws-bedrock/bedrock-runtime/us-east-1/model/anthropic.claude-3-5-haiku-20241022-v1:0/converse", CONVERSE, "bedrock-converse"),
    ],
    ids=["google-ai-studio", "google-vertex-ai", "aws-bedrock"],
)  # fmt: skip
def test_a_provider_native_path_through_cloudflare_ai_gateway_is_metered(gate, upstream, path, body, case):
    # The Gemini and Bedrock routes were anchored at the path's start: through the gateway these
    # calls were unknown endpoints, their answers' usage never read (red-team F116).
    user = "cf-native-" + str(abs(hash(path)) % 10**8)
    answer, mark = post_marked(gate, user, body, f"https://gateway.ai.cloudflare.com/v1/acct123/gw1/{path}",
                               headers={"x-fake-case": case})  # fmt: skip
    assert answer.status_code == 200 and reached(upstream, mark), answer.text[:200]
    row = _row(gate, user)
    assert row["operation"] and row["input_tokens"] and row["output_tokens"], row


def test_a_body_naming_an_agent_without_input_is_no_agent_call(gate, upstream):
    # An app's telemetry or settings naming an agent asks it nothing: not judged as any model.
    body = json.dumps({"event": "opened", "agent": "default"}).encode()
    answer, mark = post_marked(gate, "agent-telemetry", body, "https://api.mistral.ai/v1/telemetry")
    assert reached(upstream, mark), answer.text[:200]


@pytest.mark.parametrize(
    "base", [f"{AZURE}/openai/uploads", "https://api.groq.com/openai/v1/uploads"], ids=["azure", "groq"]
)
def test_a_key_cut_by_an_upload_part_boundary_off_openai_is_found(proxy_with, upstream, base):
    # The parts' edges were kept for api.openai.com's Uploads only (red-team F105 with F79's seams).
    proxy = proxy_with("dlp: {secrets: block}\n")
    user = "seam-" + str(abs(hash(base)) % 10**8)
    upload = "upload_" + marker()[:10]
    ids = []
    for data in (b"notes for the deploy\nuse aws AKIA2OGYBA", b"H6STMMNXNN for the bucket\nthanks\n"):
        part_id = "part_" + marker()[:10]
        case = fake_answer(upstream, "/parts", {"id": part_id, "object": "upload.part", "upload_id": upload})
        body = (b'--BBB\r\nContent-Disposition: form-data; name="data"; filename="blob"\r\n'
                b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n--BBB--\r\n")  # fmt: skip
        answer, mark = post_marked(proxy, user, body, f"{base}/{upload}/parts", "multipart/form-data; boundary=BBB",
                                   headers={"x-fake-case": case})  # fmt: skip
        assert answer.status_code == 200 and reached(upstream, mark), answer.text[:200]
        ids.append(part_id)
    answer, mark = post_marked(proxy, user, json.dumps({"part_ids": ids}).encode(), f"{base}/{upload}/complete")
    assert answer.status_code == 403 and not reached(upstream, mark), answer.text[:200]
