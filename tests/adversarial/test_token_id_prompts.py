"""Prompts sent as token ids are read by DLP (the threat model listed them as unread).

OpenAI's Embeddings and legacy Completions take the prompt as arrays of cl100k_base token ids;
a key written that way reached the provider unscanned. Real mitmdump, raw httpx bodies. The ids
here come from a greedy longest match over the vocabulary: not the canonical BPE encoding, but
ids the provider decodes to the same text, as an attacker may send.
"""

from __future__ import annotations

import json

import pytest

from shadowgate.dlp.tokenids import cl100k_vocabulary
from shadowgate.dlp.tokenids import decode
from shadowgate.dlp.tokenids import token_prompts
from tests.adversarial.calls import post_marked
from tests.adversarial.calls import reached
from tests.adversarial.wire import marker

EMBEDDINGS = "https://api.openai.com/v1/embeddings"
COMPLETIONS = "https://api.openai.com/v1/completions"
KEY = "AKIA2OGYBAH6STMMNXNN"


def encode(text: str) -> list[int]:
    ranks = {token: rank for rank, token in enumerate(cl100k_vocabulary())}
    data, ids, at = text.encode(), [], 0
    while at < len(data):
        end = next(e for e in range(min(len(data), at + 64), at, -1) if data[at:e] in ranks)
        ids.append(ranks[data[at:end]])
        at = end
    return ids


def test_the_vocabulary_is_openais_cl100k_base():
    # tiktoken's own test vectors (tests/test_encoding.py): cl100k_base "hello world" -> [15339, 1917]
    assert decode([15339, 1917]) == "hello world"
    assert decode(encode("naïve 日本語 🙂")) == "naïve 日本語 🙂"
    assert decode([100257]) == ""  # <|endoftext|>: a special token stands for no text


@pytest.mark.parametrize(
    ("url", "body"),
    [
        (EMBEDDINGS, lambda ids: {"model": "text-embedding-3-small", "input": ids}),
        # LangChain's OpenAIEmbeddings: one array of ids per chunk of text
        (EMBEDDINGS, lambda ids: {"model": "text-embedding-3-small", "input": [encode("the report"), ids]}),
        (COMPLETIONS, lambda ids: {"model": "gpt-3.5-turbo-instruct", "prompt": ids, "max_tokens": 5}),
        # integral floats, which lax servers take as ids (red-team F119)
        (EMBEDDINGS, lambda ids: {"model": "text-embedding-3-small", "input": [float(i) for i in ids]}),
    ],
    ids=["embeddings", "embeddings-batched", "completions", "floats"],
)
@pytest.mark.parametrize("action", ["block", "redact"])
def test_a_key_sent_as_token_ids_is_refused(proxy_with, upstream, url, body, action):
    proxy = proxy_with(f"dlp: {{secrets: {action}}}\n")
    user = f"tok-{action}-" + marker()[:6]
    sent = json.dumps(body(encode(f"deploy with {KEY} today"))).encode()
    answer, mark = post_marked(proxy, user, sent, url)
    assert answer.status_code in (400, 403), answer.text[:300]
    assert not reached(upstream, mark)
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert "AWS_ACCESS_KEY" in (row["dlp_findings"] or "")


def test_ordinary_token_arrays_pass(proxy_with, upstream):
    proxy = proxy_with("dlp: {secrets: block, pii: block}\n")
    user = "tok-plain-" + marker()[:6]
    chunks = [encode("Quarterly revenue grew in every region."), encode("def add(a, b):\n    return a + b\n")]
    sent = json.dumps({"model": "text-embedding-3-small", "input": chunks}).encode()
    answer, mark = post_marked(proxy, user, sent, EMBEDDINGS)
    assert answer.status_code == 200 and reached(upstream, mark), answer.text[:300]


def test_only_prompt_keys_holding_ids_are_read():
    assert token_prompts({"input": [15339, 1917]}) == ["hello world"]
    assert token_prompts({"body": {"input": [[15339], [1917]]}}) == ["hello", " world"]
    assert token_prompts({"input": [1.5, 2.0], "dimensions": [15339], "prompt": [True, 1]}) == []
    assert token_prompts({"input": []}) == []
