"""Class 3: a model rule cannot be passed by naming the model somewhere else (red-team F15).

A router runs the fallbacks a call lists (OpenRouter `models`, LiteLLM `fallbacks`), a batch runs
every request it holds, and Gemini names a batch's model in its path. A `gpt-4o*` block judged
only the top-level `model` (or the first request of a batch) and let each of these through.
"""

from __future__ import annotations

import json

import pytest

from tests.adversarial.calls import post_marked
from tests.adversarial.calls import reached

BLOCK = (
    "rules:\n  - {id: no-gpt4o, match: {model: 'gpt-4o*'}, action: block}\n"
    "  - {id: no-opus, match: {model: 'claude-opus*'}, action: block}\n"
    "  - {id: no-pro, match: {model: 'gemini-2.5-pro*'}, action: block}\n"
)
HI = [{"role": "user", "content": "hi"}]
FALLBACKS = {
    "openrouter-models-only": {"models": ["openai/gpt-4o", "openai/gpt-4.1"], "messages": HI},
    "openrouter-fallback": {"model": "gpt-4.1", "models": ["gpt-4.1", "openai/GPT-4o"], "messages": HI},
    "litellm-fallbacks": {"model": "gpt-4.1", "fallbacks": ["gpt-4o-mini"], "messages": HI},
    "litellm-fallback-map": {"model": "gpt-4.1", "fallbacks": [{"gpt-4.1": ["gpt-4o"]}], "messages": HI},
}


def _refused_by(proxy, upstream, user: str, body: bytes, url: str, rule: str, **kwargs) -> dict:
    """POST as `user`: refused (403) by `rule`, nothing reached the upstream; the call's row."""
    answer, mark = post_marked(proxy, user, body, url, **kwargs)
    assert answer.status_code == 403, answer.text[:200]
    assert not reached(upstream, mark)
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert row["rule_id"] == rule
    return row


@pytest.mark.parametrize("body", list(FALLBACKS.values()), ids=list(FALLBACKS))
def test_a_blocked_fallback_model_blocks_the_call(proxy_with, upstream, body):
    proxy = proxy_with(BLOCK)
    user = f"fallback-{list(FALLBACKS.values()).index(body)}"
    answer, mark = post_marked(proxy, user, json.dumps(body).encode())
    assert answer.status_code == 403, answer.text[:200]
    assert not reached(upstream, mark)
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert (row["decision"], row["rule_id"]) == ("block", "no-gpt4o")
    assert row["model"] == (body.get("model") or body["models"][0])


def test_allowed_fallbacks_pass(proxy_with, upstream):
    proxy = proxy_with(BLOCK)
    body = {"model": "gpt-4.1", "models": ["gpt-4.1", "openai/gpt-4.1-mini"], "messages": HI}
    answer, mark = post_marked(proxy, "fallback-ok", json.dumps(body).encode())
    assert answer.status_code == 200, answer.text[:200]
    assert reached(upstream, mark)


def test_a_message_batch_is_judged_by_every_request(proxy_with, upstream):
    proxy = proxy_with(BLOCK)
    params = [{"model": m, "max_tokens": 10, "messages": HI} for m in ("claude-haiku-4-5", "claude-opus-4-1")]
    body = {"requests": [{"custom_id": f"r{i}", "params": p} for i, p in enumerate(params)]}
    answer, mark = post_marked(
        proxy, "batch-second", json.dumps(body).encode(), "https://api.anthropic.com/v1/messages/batches"
    )
    assert answer.status_code == 403, answer.text[:200]
    assert not reached(upstream, mark)
    [row] = proxy.rows("user_name = 'batch-second'", expect=1)
    assert (row["model"], row["rule_id"], row["operation"]) == ("claude-haiku-4-5", "no-opus", "create_batch")


@pytest.mark.parametrize("method", ["batchGenerateContent", "countTokens"])
def test_a_gemini_batch_names_its_model_in_the_path(proxy_with, upstream, method):
    proxy = proxy_with(BLOCK)
    request = {"contents": [{"parts": [{"text": "hi"}]}]}
    body = {"batch": {"input_config": {"requests": {"requests": [{"request": request}]}}}}
    url = f"https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-pro:{method}"
    user = f"gemini-{method.lower()}"  # user names are folded to lower case
    answer, mark = post_marked(proxy, user, json.dumps(body).encode(), url)
    assert answer.status_code == 403, answer.text[:200]
    assert not reached(upstream, mark)
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert (row["model"], row["rule_id"]) == ("gemini-2.5-pro", "no-pro")


def test_bedrock_async_invoke_is_judged_by_its_model_id(proxy_with, upstream):
    # An endpoint no route knows on an AI host: the model is read from `modelId` too.
    proxy = proxy_with("rules:\n  - {id: no-nova, match: {model: 'amazon.nova-reel*'}, action: block}\n")
    body = {"modelId": "amazon.nova-reel-v1:1", "modelInput": {"taskType": "TEXT_VIDEO"}, "outputDataConfig": {}}
    url = "https://bedrock-runtime.us-east-1.amazonaws.com/async-invoke"
    answer, mark = post_marked(proxy, "bedrock-async", json.dumps(body).encode(), url)
    assert answer.status_code == 403, answer.text[:200]
    assert not reached(upstream, mark)
    [row] = proxy.rows("user_name = 'bedrock-async'", expect=1)
    assert (row["model"], row["rule_id"]) == ("amazon.nova-reel-v1:1", "no-nova")


def _batch_file(models: list[str], field: str = "file") -> tuple[bytes, str]:
    """A `/v1/files` upload (purpose batch) whose JSONL lines name these models, as the SDK sends it
    (an upload's part sends the file's bytes in its `data` field)."""
    lines = [
        json.dumps({"custom_id": f"r{i}", "method": "POST", "url": "/v1/chat/completions",
                    "body": {"model": m, "messages": HI}})
        for i, m in enumerate(models)
    ]  # fmt: skip
    boundary = "batchfile"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="in.jsonl"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n" + "\n".join(lines) + f"\n\r\n--{boundary}--\r\n"
    )
    return body.encode(), f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize(
    ("path", "field"), [("/v1/files", "file"), ("/v1/uploads/upload_abc/parts", "data")], ids=["files", "upload-part"]
)
def test_a_batch_input_file_is_judged_by_every_line(proxy_with, upstream, path, field):
    # The batch that runs this file later names only its id: the upload is where its models show.
    proxy = proxy_with(BLOCK)
    body, content_type = _batch_file(["gpt-4.1-mini", "gpt-4.1", "GPT-4o-2024-08-06"], field)
    user = f"batch-{field}"
    answer, mark = post_marked(proxy, user, body, f"https://api.openai.com{path}", content_type)
    assert answer.status_code == 403, answer.text[:200]
    assert not reached(upstream, mark)
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert (row["rule_id"], row["operation"]) == ("no-gpt4o", "upload_file")


def test_a_batch_input_file_of_allowed_models_uploads(proxy_with, upstream):
    proxy = proxy_with(BLOCK)
    body, content_type = _batch_file(["gpt-4.1-mini", "gpt-4.1"])
    answer, mark = post_marked(proxy, "batch-file-ok", body, "https://api.openai.com/v1/files", content_type)
    assert answer.status_code == 200, answer.text[:200]
    assert reached(upstream, mark)


def test_an_unknown_endpoints_nested_models_are_judged(proxy_with, upstream):
    # Cloudflare AI Gateway's universal endpoint: an array of provider requests, each its own model.
    proxy = proxy_with(BLOCK)
    body = [
        {"provider": "workers-ai", "endpoint": "@cf/meta/llama-3.1-8b-instruct", "headers": {}, "query": {"prompt": "hi"}},
        {"provider": "openai", "endpoint": "chat/completions", "headers": {}, "query": {"model": "gpt-4o", "messages": HI}},
    ]  # fmt: skip
    url = "https://gateway.ai.cloudflare.com/v1/acct123/gw1"
    _refused_by(proxy, upstream, "cf-universal", json.dumps(body).encode(), url, "no-gpt4o")


@pytest.mark.parametrize(
    "config",
    [
        {"override_params": {"model": "gpt-4o"}},
        {
            "strategy": {"mode": "fallback"},
            "targets": [{"provider": "openai"}, {"override_params": {"model": "gpt-4o"}}],
        },
    ],
    ids=["override", "fallback-target"],
)
def test_a_portkey_config_header_names_models(proxy_with, upstream, config):
    # Portkey runs the models its config header names, whatever the body's `model` says.
    proxy = proxy_with(BLOCK)
    user = f"portkey-{len(json.dumps(config))}"
    body = json.dumps({"model": "gpt-4.1", "messages": HI}).encode()
    url = "https://api.portkey.ai/v1/chat/completions"
    _refused_by(proxy, upstream, user, body, url, "no-gpt4o", headers={"x-portkey-config": json.dumps(config)})


MODEL_RULE_ONLY = (
    "rules:\n  - {id: no-gpt4o, match: {model: 'gpt-4o*'}, action: block, message: 'GPT-4o is not approved'}\n"
)
STORED_PROMPT = {"prompt": {"id": "pmpt_abc123", "version": "2"}, "input": "hi"}
RESPONSES_URL = "https://api.openai.com/v1/responses"


def test_a_stored_prompts_hidden_model_is_judged_as_any_model(proxy_with, upstream):
    # The stored prompt's model is set in OpenAI's dashboard: the proxy cannot see whether it is
    # the blocked one, so the call meets the strictest rule a model could meet.
    proxy = proxy_with(MODEL_RULE_ONLY)
    answer, mark = post_marked(proxy, "stored-prompt", json.dumps(STORED_PROMPT).encode(), RESPONSES_URL)
    assert answer.status_code == 403, answer.text[:200]
    assert "pmpt_abc123" in answer.text and "GPT-4o is not approved" in answer.text
    assert not reached(upstream, mark)
    [row] = proxy.rows("user_name = 'stored-prompt'", expect=1)
    assert (row["decision"], row["rule_id"], row["model"]) == ("block", "no-gpt4o", None)


def test_a_stored_prompt_passes_where_no_model_rule_could_apply(proxy_with, upstream):
    proxy = proxy_with(
        "rules:\n  - {id: allow-team, match: {user: [alice]}, action: allow}\n" + MODEL_RULE_ONLY.split("\n", 1)[1]
    )
    answer, mark = post_marked(proxy, "alice", json.dumps(STORED_PROMPT).encode(), RESPONSES_URL)
    assert answer.status_code == 200, answer.text[:200]
    assert reached(upstream, mark)
    # With a model named in the call, that model is the one run: judged as usual.
    body = json.dumps({**STORED_PROMPT, "model": "gpt-4.1"}).encode()
    answer, mark = post_marked(proxy_with(MODEL_RULE_ONLY), "stored-prompt-model", body, RESPONSES_URL)
    assert answer.status_code == 200, answer.text[:200]
    assert reached(upstream, mark)


def test_a_saved_portkey_config_is_judged_as_any_model(proxy_with, upstream):
    proxy = proxy_with(MODEL_RULE_ONLY)
    body = json.dumps({"model": "gpt-4.1", "messages": HI}).encode()
    url = "https://api.portkey.ai/v1/chat/completions"
    answer, mark = post_marked(proxy, "portkey-saved", body, url, headers={"x-portkey-config": "pc-abc123"})
    assert answer.status_code == 403, answer.text[:200]
    assert not reached(upstream, mark)
    # Without it, the body's model is the one run.
    answer, mark = post_marked(proxy, "portkey-plain", body, url)
    assert answer.status_code == 200, answer.text[:200]


@pytest.mark.parametrize(
    ("url", "body"),
    [
        (RESPONSES_URL, {"model": "gpt-4.1-mini", "input": "draw a cat", "tools": [{"type": "image_generation", "model": "gpt-image-1"}]}),
        ("https://api.openai.com/v1/realtime/client_secrets",
         {"session": {"type": "realtime", "model": "gpt-realtime", "audio": {"input": {"transcription": {"model": "gpt-image-1"}}}}}),
    ],
    ids=["responses-image-tool", "realtime-transcription"],
)  # fmt: skip
def test_a_model_a_tool_runs_is_judged(proxy_with, upstream, url, body):
    # The call's own model is allowed; its image tool or transcription runs a blocked one (red-team F44).
    proxy = proxy_with("rules:\n  - {id: no-image, match: {model: ['gpt-image-*', 'dall-e-*']}, action: block}\n")
    _refused_by(proxy, upstream, f"tool-model-{len(url)}", json.dumps(body).encode(), url, "no-image")


OPUS_RULE = "rules:\n  - {id: no-opus, match: {model: '*claude-opus*'}, action: block}\n"
VERTEX = "https://us-east5-aiplatform.googleapis.com"
AGENTS = "https://bedrock-agent-runtime.us-east-1.amazonaws.com"
OPUS = "anthropic.claude-opus-4-1-20250805-v1:0"


@pytest.mark.parametrize(
    ("url", "body"),
    [
        # Vertex serves the same API under v1beta1 (red-team F56): a route now.
        (f"{VERTEX}/v1beta1/projects/p/locations/us-east5/publishers/anthropic/models/claude-opus-4-1@20250805:rawPredict",
         {"anthropic_version": "vertex-2023-10-16", "max_tokens": 10, "messages": HI}),
        # An endpoint no route knows names its model in the path.
        (f"{VERTEX}/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-opus-4-1:futureVerb",
         {"anthropic_version": "vertex-2023-10-16", "messages": HI}),
        # Bedrock Agents' spellings of the model (red-team F57).
        (f"{AGENTS}/agents/invokeInlineAgent", {"foundationModel": OPUS, "instruction": "be brief", "inputText": "hi"}),
        (f"{AGENTS}/retrieveAndGenerate", {"input": {"text": "hi"}, "retrieveAndGenerateConfiguration": {
            "type": "KNOWLEDGE_BASE", "knowledgeBaseConfiguration": {
                "knowledgeBaseId": "KB1", "modelArn": f"arn:aws:bedrock:us-east-1::foundation-model/{OPUS}"}}}),
    ],
    ids=["vertex-v1beta1", "vertex-unknown-verb", "inline-agent", "retrieve-and-generate"],
)  # fmt: skip
def test_a_model_named_in_the_path_or_by_bedrock_agents_is_judged(proxy_with, upstream, url, body):
    proxy = proxy_with(OPUS_RULE)
    user = f"opus-{len(url)}-{len(json.dumps(body))}"
    _refused_by(proxy, upstream, user, json.dumps(body).encode(), url, "no-opus")


def test_a_batch_input_file_of_one_blocked_model_is_refused(proxy_with, upstream):
    # Its only model is another's: judged by it, not as a call without a model.
    body, content_type = _batch_file(["gpt-4o"])
    _refused_by(
        proxy_with(BLOCK),
        upstream,
        "batch-one-model",
        body,
        "https://api.openai.com/v1/files",
        "no-gpt4o",
        content_type=content_type,
    )


@pytest.mark.parametrize(
    "path",
    ["/v1beta/%6dodels/gemini-2.5-pro:newVerb", "/v1beta//models//gemini-2.5-pro:newVerb", "/v1beta/models%2Fgemini-2.5-pro:newVerb",
     "/v1beta/MODELS/gemini-2.5-pro:newVerb", "/v1beta/models;a=b/gemini-2.5-pro:newVerb"],
)  # fmt: skip
def test_a_path_model_is_read_as_servers_read_the_path(proxy_with, upstream, path):
    # Read on the raw path, an escape or a doubled slash hid it (red-team F70).
    proxy = proxy_with("rules:\n  - {id: no-pro, match: {model: 'gemini-2.5-pro*'}, action: block}\n")
    url = f"https://generativelanguage.googleapis.com{path}"
    _refused_by(proxy, upstream, f"path-model-{len(path)}-{path[9].lower()}", b'{"foo": "bar"}', url, "no-pro")


@pytest.mark.parametrize(
    "line",
    [
        {"url": "/v1/responses", "body": {"prompt": {"id": "pmpt_1"}, "input": "hi"}},  # the stored prompt's model
        {"url": "/v1/responses", "body": {"model": "gpt-4.1", "input": "draw", "tools": [{"type": "image_generation", "model": "gpt-4o"}]}},
    ],
    ids=["stored-prompt", "tool-model"],
)  # fmt: skip
def test_a_batch_lines_hidden_or_tool_model_is_judged(proxy_with, upstream, line):
    # Judged on its `model` only, a line passed what the same call sent directly meets (red-team F69).
    text = "\ufeff" + json.dumps({"custom_id": "1", "method": "POST", **line})  # behind a UTF-8 BOM too
    body = (
        '--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        '--b\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\n\r\n' + text + "\r\n--b--\r\n"
    ).encode()
    user = f"batch-line-{len(text)}"
    _refused_by(proxy_with(MODEL_RULE_ONLY), upstream, user, body, "https://api.openai.com/v1/files", "no-gpt4o",
                content_type="multipart/form-data; boundary=b")  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [
        {"model": "openai/gpt-4o@preset/work", "messages": HI},  # the model, with a preset's settings
        {"model": "@preset/work", "messages": HI},  # the preset's stored model
        {"model": "gpt-4.1", "preset": "work", "messages": HI},  # a preset may override the model
        {"model": "openrouter/auto", "messages": HI},  # the router picks
    ],
    ids=["model-at-preset", "preset-only", "preset-member", "auto-router"],
)
def test_openrouter_presets_and_auto_are_judged(proxy_with, upstream, body):
    # Folded to `work`, a preset dodged a gpt-4o block; a preset or the Auto Router is a model
    # the proxy cannot see, judged as any model (red-team F62).
    user = f"openrouter-{len(json.dumps(body))}"
    url = "https://openrouter.ai/api/v1/chat/completions"
    _refused_by(proxy_with(MODEL_RULE_ONLY), upstream, user, json.dumps(body).encode(), url, "no-gpt4o")


def test_an_upload_the_proxy_cannot_split_is_judged_as_any_model(proxy_with, upstream):
    # Without DLP nothing refused it, and its lines' models went unjudged (red-team F78).
    line = json.dumps({"custom_id": "1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o"}})
    body = (
        'preamble\r\n--b\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n\r\n' + line
    ).encode()
    url = "https://api.openai.com/v1/files"
    _refused_by(proxy_with(MODEL_RULE_ONLY), upstream, "unsplittable-upload", body, url, "no-gpt4o",
                content_type="multipart/form-data; boundary=b")  # fmt: skip


@pytest.mark.parametrize(
    ("url", "body", "content_type"),
    [
        # gpt-image-1's own parameters: OpenAI runs gpt-image-1 without a model named (red-team F76).
        ("https://api.openai.com/v1/images/generations",
         json.dumps({"prompt": "a cat", "quality": "high", "output_format": "webp"}).encode(), "application/json"),
        # A repeated form field: a first-wins parser runs the first (F77).
        ("https://api.openai.com/v1/audio/transcriptions",
         b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\ngpt-image-1-transcribe\r\n'
         b'--b\r\nContent-Disposition: form-data; name="model"\r\n\r\nwhisper-1\r\n'
         b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF\r\n--b--\r\n',
         "multipart/form-data; boundary=b"),
    ],
    ids=["image-defaults", "repeated-form-model"],
)  # fmt: skip
def test_a_media_calls_model_is_read_as_the_provider_reads_it(proxy_with, upstream, url, body, content_type):
    proxy = proxy_with("rules:\n  - {id: no-gpt-image, match: {model: 'gpt-image-1*'}, action: block}\n")
    _refused_by(proxy, upstream, f"media-{len(body)}", body, url, "no-gpt-image", content_type=content_type)


@pytest.mark.parametrize(
    ("url", "body", "headers"),
    [
        # Vercel AI Gateway's fallbacks (red-team F62).
        ("https://ai-gateway.vercel.sh/v1/chat/completions",
         {"model": "openai/gpt-4.1", "messages": HI, "providerOptions": {"gateway": {"models": ["openai/gpt-4o"]}}}, {}),
        # A fallback list inside a gateway config's target (F63).
        ("https://api.portkey.ai/v1/chat/completions", {"model": "gpt-4.1", "messages": HI},
         {"x-portkey-config": json.dumps({"targets": [{"override_params": {"models": ["openai/gpt-4o"]}}]})}),
        # Saved elsewhere (F80): an Agent Builder workflow, a saved prompt template.
        ("https://api.openai.com/v1/chatkit/sessions", {"workflow": {"id": "wf_68df"}, "user": "u1"}, {}),
        ("https://api.portkey.ai/v1/prompts/pp-weekly-abc/completions", {"variables": {"x": "y"}}, {}),
    ],
    ids=["vercel-fallbacks", "portkey-target-list", "chatkit-workflow", "portkey-prompt-template"],
)  # fmt: skip
def test_gateway_fallbacks_and_saved_models_are_judged(proxy_with, upstream, url, body, headers):
    user = f"saved-{len(url)}-{len(json.dumps(body))}"
    _refused_by(
        proxy_with(MODEL_RULE_ONLY), upstream, user, json.dumps(body).encode(), url, "no-gpt4o", headers=headers
    )


def test_a_fallback_preset_or_auto_router_is_judged_as_any_model(proxy_with, upstream):
    # A reference among the fallbacks runs when the primary fails (red-team F88).
    body = {"model": "openai/no-such-model", "models": ["@preset/work"], "messages": HI}
    url = "https://openrouter.ai/api/v1/chat/completions"
    _refused_by(proxy_with(MODEL_RULE_ONLY), upstream, "fallback-preset", json.dumps(body).encode(), url, "no-gpt4o")


@pytest.mark.parametrize("model", ["@openai-prod/gpt-4.1", "@cf/meta/llama-3.1-8b-instruct"])
def test_a_provider_slug_model_is_a_model_not_a_preset(proxy_with, upstream, model):
    # Portkey's `@provider-slug/model` and Workers AI's `@cf/...` name the model: judged by it,
    # not as any model (red-team F85: refused by an unrelated gpt-4o block).
    proxy = proxy_with(MODEL_RULE_ONLY)
    answer, mark = post_marked(
        proxy, f"slug-{len(model)}", json.dumps({"model": model, "messages": HI}).encode(),
        "https://api.portkey.ai/v1/chat/completions",
    )  # fmt: skip
    assert answer.status_code == 200 and reached(upstream, mark), answer.text[:200]
