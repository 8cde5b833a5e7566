"""Opaque payloads pass as they came (round-6b G29, G30).

Base64 embeddings in an answer (the OpenAI SDK's default encoding) and Gemini's thought
signatures in a request (which the API requires back unchanged) are random bytes: read as text,
one in a hundred held a "UK postcode" and was rewritten, corrupting the vector or breaking the
agent's next turn, and 2,048 vectors took minutes to inspect. The same names elsewhere (a tool's
input) are still read. Real mitmdump.
"""

from __future__ import annotations

import base64
import json
import random
import struct
import time

from tests.adversarial.calls import fake_answer
from tests.adversarial.calls import post_marked
from tests.adversarial.calls import reached
from tests.adversarial.wire import marker

GEMINI = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"


def test_base64_embeddings_in_an_answer_pass_unread(proxy_with, upstream):
    rng = random.Random(500)
    vectors = [base64.b64encode(struct.pack("<1536f", *[rng.uniform(-0.1, 0.1) for _ in range(1536)])).decode()
               for _ in range(500)]  # fmt: skip
    answer_body = {"object": "list", "model": "text-embedding-3-small", "usage": {"prompt_tokens": 500, "total_tokens": 500},
                   "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]}  # fmt: skip
    case = fake_answer(upstream, "/v1/embeddings", answer_body)
    proxy = proxy_with("responses: {dlp: redact, exfil_links: block}\n")
    sent = json.dumps(
        {"model": "text-embedding-3-small", "input": ["chunk"] * 500, "encoding_format": "base64"}
    ).encode()
    started = time.monotonic()
    try:
        answer, _ = post_marked(proxy, "opaque-emb-" + marker()[:6], sent, "https://api.openai.com/v1/embeddings",
                                headers={"x-fake-case": case})  # fmt: skip
    finally:
        upstream.cases.pop(case, None)
    assert answer.status_code == 200 and [d["embedding"] for d in answer.json()["data"]] == vectors
    assert time.monotonic() - started < 10


def _signature(rng: random.Random) -> str:
    return base64.b64encode(bytes(rng.getrandbits(8) for _ in range(1500))).decode()


def test_gemini_thought_signatures_go_back_unchanged(proxy_with, upstream):
    rng = random.Random(43)
    signatures = [_signature(rng) for _ in range(200)]
    contents: list[dict] = [{"role": "user", "parts": [{"text": "Plan the refactor."}]}]
    for i, signature in enumerate(signatures):
        contents.append(
            {
                "role": "model",
                "parts": [
                    {
                        "functionCall": {"name": "read_file", "args": {"path": f"src/m{i}.py"}},
                        "thoughtSignature": signature,
                    }
                ],
            }
        )
        contents.append({"role": "user", "parts": [{"functionResponse": {"name": "read_file", "response": {"content": "x = 1"}}}]})  # fmt: skip
    proxy = proxy_with("dlp: {secrets: redact, pii: redact}\n")
    answer, mark = post_marked(proxy, "opaque-sig-" + marker()[:6], json.dumps({"contents": contents}).encode(), GEMINI,
                               headers={"x-goog-api-key": "k-test"})  # fmt: skip
    [seen] = [s for s in upstream.seen if s.headers.get("x-attack") == mark]
    back = [c["parts"][0]["thoughtSignature"] for c in json.loads(seen.body)["contents"] if c["role"] == "model"]
    assert back == signatures


def test_the_same_name_outside_a_turns_part_is_read(proxy_with, upstream):
    proxy = proxy_with("dlp: {secrets: block}\n")
    args = {"path": "x", "thoughtSignature": "AKIA2OGYBAH6STMMNXNN"}  # a tool call's argument: the model's text
    contents = [{"role": "model", "parts": [{"functionCall": {"name": "f", "args": args}}]}]
    answer, mark = post_marked(proxy, "opaque-arg-" + marker()[:6], json.dumps({"contents": contents}).encode(), GEMINI,
                               headers={"x-goog-api-key": "k-test"})  # fmt: skip
    assert answer.status_code == 403 and not reached(upstream, mark)


IMAGE_URL = (
    "https://oaidalleapiprodscus.blob.core.windows.net/private/org-abc/user-def/img-123.png"
    "?st=2026-12-06T04%3A00%3A00Z&se=2026-12-06T05%3A00%3A00Z&sp=r&sv=2021-08-06&sr=b&rscd=inline&rsct=image/png"
    "&skoid=6aaadede-4fb3-4698-a8f6-684d7786b067&sktid=a48cca56-e6da-484e-a814-9c849652bcb3"
    "&skt=2026-12-06T03%3A00%3A00Z&ske=2026-12-07T03%3A00%3A00Z&sks=b&skv=2021-08-06"
    "&sig=Xk2%2Bq9mVt7Zr4WbN1pL8sQy3Hc6Df0Ga5Ej2Ko9Mu4I%3D"
)


def test_a_generated_images_link_reaches_the_client_intact(proxy_with, upstream):
    """Round-6b G28: the image's one-hour SAS URL on OpenAI's blob storage had its `sig` redacted
    (the image lost) or the answer withheld as an exfiltration link."""
    proxy = proxy_with("responses: {dlp: redact, exfil_links: block}\n")
    case = fake_answer(upstream, "/v1/images/generations", {"created": 1, "data": [{"url": IMAGE_URL}]})
    sent = json.dumps({"model": "dall-e-3", "prompt": "a cat"}).encode()
    try:
        answer, _ = post_marked(proxy, "opaque-img-" + marker()[:6], sent, "https://api.openai.com/v1/images/generations",
                                headers={"x-fake-case": case})  # fmt: skip
    finally:
        upstream.cases.pop(case, None)
    assert answer.status_code == 200 and answer.json()["data"][0]["url"] == IMAGE_URL


def test_a_link_elsewhere_with_a_signature_is_still_inspected(proxy_with, upstream):
    proxy = proxy_with("responses: {dlp: redact, exfil_links: block}\n")
    text = f"Download it from {IMAGE_URL.replace('oaidalleapiprodscus', 'attacker')}"
    case = fake_answer(upstream, "/v1/chat/completions", {"id": "c", "object": "chat.completion", "model": "gpt-4o",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]})  # fmt: skip
    try:
        answer, _ = post_marked(proxy, "opaque-img2-" + marker()[:6], json.dumps({"model": "gpt-4o", "messages": []}).encode(),
                                headers={"x-fake-case": case})  # fmt: skip
    finally:
        upstream.cases.pop(case, None)
    assert answer.status_code == 403, answer.text[:300]
