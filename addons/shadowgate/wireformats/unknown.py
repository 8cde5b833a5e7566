"""Facts of a request to an endpoint no wire format describes, on an AI host.

Such a request is still recorded (and DLP-scanned, see scope.py): with its model when the body
names one in a field AI APIs commonly use at the top level (`model`, Bedrock's and AWS's
`modelId`, watsonx's `model_id`), and an empty operation, so the row says that the proxy did not
know the endpoint rather than guessing. A model named deeper (Cloudflare AI Gateway's universal
endpoint posts an array of provider requests, each with its own `query.model`) is one the call
may run: judged as well (red-team F15).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

from shadowgate.config.requestpath import path_readings

from .base import RequestFacts
from .common import NESTED_MODELS_MAX
from .common import TOO_MANY_MODELS
from .common import dig
from .common import nested_models
from .common import nonempty_str
from .common import stream_flag

# The fields that name the model, in the order they are trusted: Bedrock's and AWS's `modelId`,
# watsonx's `model_id`, Bedrock Agents' `foundationModel` (InvokeInlineAgent) and `modelArn`
# (RetrieveAndGenerate), Bedrock jobs' `modelIdentifier` (red-team F57).
MODEL_FIELDS = ("model", "modelId", "model_id", "foundationModel", "modelArn", "modelIdentifier", "models")
# Calls that run a model saved elsewhere (red-team F80): an OpenAI Agent Builder workflow (ChatKit
# session), a saved prompt template (Portkey's Prompt API).
_SAVED_PROMPT_PATH = re.compile(r"/prompts/[^/]+/(?:completions|render)\b", re.IGNORECASE)
# A path that names its model (Vertex AI's `.../publishers/{p}/models/{model}:verb`, Gemini's
# `/models/{model}:verb`, Bedrock's `/model/{id}/...`): an endpoint no route knows there still runs it.
# Azure OpenAI's `/openai/deployments/{deployment}/...` names it too (red-team F97).
_PATH_MODEL = re.compile(r"/(?:models?|deployments)/([^/:?#]+)", re.IGNORECASE)
# Agents run a model set where they were made (red-team F98): Bedrock Agents' InvokeAgent and
# InvokeFlow, Vertex AI Agent Engine's query; in the body, Mistral's `agent_id`, Gemini
# Interactions' `agent`, Azure AI Foundry Agents' `assistant_id`.
_AGENT_PATH = re.compile(
    r"/agents/[^/]+/agentAliases/|/flows/[^/]+/aliases/|/reasoningEngines/[^/:]+:(?:stream)?query", re.IGNORECASE
)
_AGENT_FIELDS = ("agent_id", "agent", "assistant_id")
# What a call to an agent carries beside its id: its input. A body that names an agent without
# one (an app's telemetry, a settings update) asks the agent nothing.
_AGENT_INPUTS = ("messages", "inputs", "input", "inputText", "thread", "additional_messages", "query", "prompt")


def unknown_endpoint_facts(body: Any, path: str = "") -> RequestFacts:
    model = next((m for name in MODEL_FIELDS if (m := nonempty_str(dig(body, name)))), None)
    # Read in every reading a server may give the path (escapes, `//`, `;params`, `\\`), as the
    # catalog's routes are (red-team F70).
    in_path = [unquote(m) for reading in path_readings(path) for m in _PATH_MODEL.findall(reading)]
    nested = nested_models(body, MODEL_FIELDS)
    others = tuple(m for m in dict.fromkeys([*in_path, *nested]) if m != model)
    reference = TOO_MANY_MODELS if len(nested) >= NESTED_MODELS_MAX else None
    if isinstance(dig(body, "workflow", "id"), str):
        reference = f"the workflow {str(dig(body, 'workflow', 'id'))[:80]}"
    elif any(_SAVED_PROMPT_PATH.search(reading) for reading in path_readings(path)):
        reference = "a saved prompt template"
    elif (agent := next((a for name in _AGENT_FIELDS if (a := nonempty_str(dig(body, name)))), None)) and (
        any(dig(body, key) is not None for key in _AGENT_INPUTS) or path.split("?", 1)[0].rstrip("/").endswith("/runs")
    ):
        reference = f"the agent {agent[:80]}"
    elif any(_AGENT_PATH.search(reading) for reading in path_readings(path)):
        reference = "an agent or flow named in the path"
    return RequestFacts(
        operation="",
        model=model or (others[0] if others else None),
        streaming=stream_flag(dig(body, "stream"), False),
        other_models=others[1:] if model is None else others,
        model_reference=reference,
    )
