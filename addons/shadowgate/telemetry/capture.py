"""Opt-in content capture: the request's message text as gen_ai.input.messages and
gen_ai.system_instructions, exactly the strings DLP scans.
"""

from __future__ import annotations

import json

from shadowgate.telemetry import semconv as sc

MAX_CAPTURED_CHARS = 32 * 1024


def captured_content(body: bytes, content_encoding: str | None) -> dict[str, str]:
    """Opt-in content capture: the request's prompt text in the semconv's JSON message form.

    The text is exactly what DLP scans (wireformats.prompt_strings; the body is the one DLP
    rewrote), grouped by message, up to MAX_CAPTURED_CHARS: no image, audio or tool schema.
    """
    from mitmproxy.net import encoding

    from shadowgate.wireformats import SYSTEM_KEYS
    from shadowgate.wireformats import parse_json_body
    from shadowgate.wireformats import prompt_strings

    try:
        raw = encoding.decode(body, content_encoding) if content_encoding else body
    except Exception:
        return {}
    if not isinstance(raw, bytes):  # a codec name, not a Content-Encoding, decodes to text: not JSON
        return {}
    doc = parse_json_body(raw)
    if not isinstance(doc, dict):
        return {}
    budget = MAX_CAPTURED_CHARS
    system: list[str] = []
    messages: dict[tuple, tuple[str, list[str]]] = {}  # by message path: (role, texts)
    for path, text in prompt_strings(doc, shadowed=False):  # what the upstream reads
        if budget <= 0:
            break
        text = text[:budget]
        if not text:
            continue
        budget -= len(text)
        if path[0] in SYSTEM_KEYS:
            system.append(text)
            continue
        # A message is an element of a top-level list (messages, contents, input), else the field.
        top = doc[path[0]]
        at = path[:2] if isinstance(top, list) and len(path) > 1 else path[:1]
        item = top[path[1]] if len(at) == 2 else top
        role = item.get("role") if isinstance(item, dict) else None
        messages.setdefault(at, (role if isinstance(role, str) else "user", []))[1].append(text)
    attrs = {}
    if system:
        attrs[sc.GEN_AI_SYSTEM_INSTRUCTIONS] = json.dumps(
            [{"type": "text", "content": t} for t in system], ensure_ascii=False
        )
    if messages:
        attrs[sc.GEN_AI_INPUT_MESSAGES] = json.dumps(
            [
                {"role": role, "parts": [{"type": "text", "content": t} for t in texts]}
                for role, texts in messages.values()
            ],
            ensure_ascii=False,
        )
    return attrs
