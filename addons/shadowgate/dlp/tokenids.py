"""Prompts sent as token ids, read as the text they stand for.

OpenAI's legacy Completions (`prompt`) and Embeddings (`input`) take a prompt as an array of
token ids, or an array of such arrays, in the cl100k_base encoding of the models that serve them
(gpt-3.5-turbo-instruct, davinci-002, babbage-002, text-embedding-3-*, text-embedding-ada-002);
LangChain's OpenAI embeddings send token arrays by default. A secret sent that way was never
read: DLP now reads the decoded text. A value found there cannot be redacted in place (the
proxy has the vocabulary, not the tokenizer that would encode a placeholder), so a finding to
redact refuses the request instead.

The vocabulary is OpenAI's published cl100k_base.tiktoken (MIT, the file tiktoken downloads),
bundled xz-compressed in data/ and checked on first use against the SHA-256 tiktoken pins for
it; nothing is fetched. Decoding is a table lookup: each id's bytes, joined, read as UTF-8.
Ids of another tokenizer (a self-hosted server's `prompt_token_ids`) decode to other text:
docs/threat-model.md.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import lzma
from importlib import resources
from typing import Any

CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"  # tiktoken's pin
# The keys that hold a prompt as token ids: Completions' prompt, Embeddings' input (in a body, or
# in the `body` of a batch file's line).
_PROMPT_KEYS = ("prompt", "input")
_NESTING = 3  # how deep below the body's top the keys are looked for (a batch line: body.input)


@functools.cache
def cl100k_vocabulary() -> tuple[bytes, ...]:
    """Each token id's bytes (about 100,000 of them; read once, in ~0.1 s: Redact loads it on a
    thread at start-up when DLP is on)."""
    raw = lzma.decompress(resources.files(__package__).joinpath("data", "cl100k_base.tiktoken.xz").read_bytes())
    if hashlib.sha256(raw).hexdigest() != CL100K_SHA256:
        raise RuntimeError("shadowgate: data/cl100k_base.tiktoken.xz is not OpenAI's cl100k_base vocabulary")
    # "<base64 token> <rank>" a line, ranks 0, 1, 2, ... in order (the pinned file's layout).
    return tuple(binascii.a2b_base64(token) for token in raw.split()[0::2])


def _token_ids(value: Any) -> bool:
    # Integral floats too: a lax server (pydantic, as vLLM and LiteLLM validate) takes 5018.0 as
    # 5018 (red-team F119).
    return isinstance(value, list) and bool(value) and all(_token_id(i) for i in value)


def _token_id(item: Any) -> bool:
    return type(item) is int or (type(item) is float and item.is_integer())


def decode(ids: list[int]) -> str:
    """The text token ids stand for; an id the vocabulary does not have (a special token) is nothing."""
    table = cl100k_vocabulary()
    size = len(table)
    return b"".join(table[int(i)] if 0 <= i < size else b"" for i in ids).decode("utf-8", "replace")


def token_prompts(body: Any) -> list[str]:
    """The prompts of a JSON body written as token ids, decoded: one text per array of ids."""
    found: list[str] = []
    stack: list[tuple[Any, int]] = [(body, 0)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, dict) or depth > _NESTING:
            continue
        for key, value in node.items():
            if key in _PROMPT_KEYS and _token_ids(value):
                found.append(decode(value))
            elif key in _PROMPT_KEYS and isinstance(value, list) and all(_token_ids(v) for v in value) and value:
                found.extend(decode(v) for v in value)
            elif isinstance(value, dict):
                stack.append((value, depth + 1))
    return found
