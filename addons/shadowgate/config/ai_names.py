"""Does a host the catalog does not list look like an AI service? Name heuristics for discovery.

Only the name is used (the proxy has not decrypted the connection), so this is triage material,
never a decision: a policy never blocks on it, and the weekly report calls the hosts candidates.
The reason says which sign fired, so an analyst can weigh it:

    tld:.ai          the registrable domain is under .ai (many AI start-ups; also Anguilla's sites)
    hosting:SUFFIX   a host under a suffix that serves AI demos and models (Hugging Face Spaces, ...)
    word:WORD        a label, or a hyphen/digit-separated part of one, is an AI word (gpt, llm, ...)

Matching is by whole parts of labels, never by substring: "chatgpt-clone.example" has the part
"chatgpt", "adult.example" does not have "ai", and "mail.example" is not "ai".
"""

from __future__ import annotations

import functools
import re

from shadowgate.config.catalog import normalise_host
from shadowgate.config.catalog import site_of

# Suffixes where anyone can run a model or an AI app (each label-wise: "*.hf.space").
AI_HOSTING_SUFFIXES = (
    "hf.space",  # Hugging Face Spaces
    "gradio.live",  # Gradio share links
    "modal.run",  # Modal web endpoints
    "proxy.runpod.net",  # RunPod pod proxies
    "replicate.delivery",  # Replicate outputs
    "fal.run",  # fal.ai model endpoints
    "baseten.co",  # Baseten model endpoints
    "streamlit.app",  # Streamlit Community Cloud (many LLM demos)
    "ngrok-free.app",  # tunnels to self-hosted model servers (often Ollama or vLLM)
)

# Parts of a label that name AI on their own. Kept to words that rarely mean anything else in a
# host name: "chat" alone (support widgets), "bot" and "agent" (user-agent, build agents) and
# "ml" (mail, HTML) would rank ordinary SaaS above real candidates.
AI_WORDS = frozenset(
    {
        "ai",
        "genai",
        "gpt",
        "chatgpt",
        "llm",
        "llms",
        "openai",
        "copilot",
        "chatbot",
        "claude",
        "gemini",
        "mistral",
        "llama",
        "ollama",
        "vllm",
        "deepseek",
        "qwen",
        "diffusion",
        "sdxl",
        "inference",
        "embeddings",
        "rag",
        "prompt",
        "prompts",
        "agentic",
        "transformer",
        "transformers",
    }
)

_PARTS = re.compile(r"[a-z]+")


@functools.lru_cache(maxsize=16384)  # hosts repeat; a connection must not pay for the regex twice
def ai_name_reason(host: str) -> str | None:
    """The first sign that the host looks like an AI service, or None."""
    host = normalise_host(host)
    if not host or host.replace(".", "").isdigit() or ":" in host:
        return None  # an IP address says nothing
    labels = host.split(".")
    for suffix in AI_HOSTING_SUFFIXES:
        if host.endswith("." + suffix):
            return f"hosting:{suffix}"
    site = site_of(host)
    if site.endswith(".ai") and site != "ai":
        return "tld:.ai"
    # The public suffix ("com", "co.uk") is not a word of the name.
    for label in labels[: len(labels) - site.count(".")]:
        for part in _PARTS.findall(label):
            if part in AI_WORDS:
                return f"word:{part}"
    return None


__all__ = ["AI_HOSTING_SUFFIXES", "AI_WORDS", "ai_name_reason"]
