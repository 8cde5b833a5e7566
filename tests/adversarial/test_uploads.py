"""What an OpenAI Upload's parts hold across their boundaries is read at the complete.

An Upload is sent in parts, each its own request, joined in the order the complete names. A key
or a batch line cut by a part boundary was whole in no request: DLP and the model rules never
saw it. Real mitmdump; the fake upstream answers each part with its id, as OpenAI does.
"""

from __future__ import annotations

import json

import pytest

from tests.adversarial.calls import fake_answer
from tests.adversarial.calls import post_marked
from tests.adversarial.calls import reached
from tests.adversarial.wire import marker

UPLOAD = "https://api.openai.com/v1/uploads/upload_{}"


def _part(proxy, upstream, user: str, upload: str, data: bytes):
    """Send one part; (answer, mark, part id)."""
    part_id = "part_" + marker()[:10]
    case = fake_answer(
        upstream, f"/v1/uploads/{upload}/parts", {"id": part_id, "object": "upload.part", "upload_id": upload}
    )
    body = (b'--BBB\r\nContent-Disposition: form-data; name="data"; filename="blob"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n" + data + b"\r\n--BBB--\r\n")  # fmt: skip
    try:
        answer, mark = post_marked(proxy, user, body, UPLOAD.format(upload[7:]) + "/parts",
                                   "multipart/form-data; boundary=BBB", headers={"x-fake-case": case})  # fmt: skip
    finally:
        upstream.cases.pop(case, None)
    return answer, mark, part_id


def _upload(proxy, upstream, user: str, pieces: list[bytes], order: list[int] | None = None):
    upload = "upload_" + marker()[:10]
    ids = []
    for data in pieces:
        answer, mark, part_id = _part(proxy, upstream, user, upload, data)
        assert answer.status_code == 200 and reached(upstream, mark), answer.text[:300]
        ids.append(part_id)
    order = order or list(range(len(ids)))
    case = fake_answer(
        upstream, f"/v1/uploads/{upload}/complete", {"id": upload, "object": "upload", "status": "completed"}
    )
    try:
        sent = json.dumps({"part_ids": [ids[i] for i in order]}).encode()
        answer, mark = post_marked(proxy, user, sent, UPLOAD.format(upload[7:]) + "/complete",
                                   headers={"x-fake-case": case})  # fmt: skip
    finally:
        upstream.cases.pop(case, None)
    return answer, mark


KEY_CUT = [b"notes for the deploy\nuse aws AKIA2OGYBA", b"H6STMMNXNN for the bucket\nthanks\n"]


@pytest.mark.parametrize("action", ["block", "redact"])
def test_a_key_cut_by_a_part_boundary_refuses_the_complete(proxy_with, upstream, action):
    proxy = proxy_with(f"dlp: {{secrets: {action}}}\n")
    user = f"seam-key-{action}-" + marker()[:6]
    answer, mark = _upload(proxy, upstream, user, KEY_CUT)
    assert answer.status_code == 403 and not reached(upstream, mark), answer.text[:300]
    rows = proxy.rows(f"user_name = '{user}'", expect=3)
    assert "AWS_ACCESS_KEY" in (rows[-1]["dlp_findings"] or "")


def test_the_parts_are_joined_in_the_order_the_complete_names(proxy_with, upstream):
    proxy = proxy_with("dlp: {secrets: block}\n")
    user = "seam-order-" + marker()[:6]
    answer, mark = _upload(proxy, upstream, user, KEY_CUT, order=[1, 0])  # "H6ST...thanks\n" + "notes...AKIA2OGYBA"
    assert answer.status_code == 200 and reached(upstream, mark), answer.text[:300]


BATCH_CUT = [
    b'{"custom_id": "1", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4.1-mini", "max_tokens": 5, "messages": []}}\n'
    b'{"custom_id": "2", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "gpt-4o',
    b'-mini", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}}\n',
]


def test_a_batch_line_cut_by_a_part_boundary_is_judged(proxy_with, upstream):
    proxy = proxy_with("rules:\n  - {id: no-4o, match: {model: 'gpt-4o*'}, action: block}\n")
    user = "seam-batch-" + marker()[:6]
    answer, mark = _upload(proxy, upstream, user, BATCH_CUT)
    assert answer.status_code == 403 and not reached(upstream, mark), answer.text[:300]
    row = proxy.rows(f"user_name = '{user}'", expect=3)[-1]
    assert row["rule_id"] == "no-4o"


def test_an_ordinary_jsonl_upload_in_parts_passes(proxy_with, upstream):
    proxy = proxy_with(
        "dlp: {secrets: block, pii: block}\nrules:\n  - {id: no-4o, match: {model: 'gpt-4o*'}, action: block}\n"
    )
    user = "seam-plain-" + marker()[:6]
    pieces = [BATCH_CUT[0].replace(b"gpt-4o", b"gpt-4.1"), BATCH_CUT[1]]
    answer, mark = _upload(proxy, upstream, user, pieces)
    assert answer.status_code == 200 and reached(upstream, mark), answer.text[:300]


def test_a_batch_line_too_long_to_keep_is_judged_as_any_model(proxy_with, upstream):
    proxy = proxy_with("rules:\n  - {id: no-4o, match: {model: 'gpt-4o*'}, action: block}\n")
    user = "seam-long-" + marker()[:6]
    head = b'{"custom_id": "1", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": [{"role": "user", "content": "'
    pieces = [head + b"a" * 300_000, b"a" * 300_000 + b'"}], "model": "gpt-4o", "max_tokens": 5}}\n']
    answer, mark = _upload(proxy, upstream, user, pieces)
    assert answer.status_code == 403 and not reached(upstream, mark), answer.text[:300]
    assert "too long to read" in answer.text


def test_a_long_batch_line_with_an_escaped_url_key_is_judged_as_any_model(proxy_with, upstream):
    # Red-team F122: only a literal "url" made the cut line a batch line's.
    proxy = proxy_with("rules:\n  - {id: no-4o, match: {model: 'gpt-4o*'}, action: block}\n")
    head = b'{"custom_id": "1", "method": "POST", "\\u0075rl": "/v1/chat/completions", "body": {"messages": [{"role": "user", "content": "'
    pieces = [head.replace(b'"custom_id"', b'"\\u0063ustom_id"') + b"a" * 300_000,
              b"a" * 300_000 + b'"}], "model": "gpt-4o", "max_tokens": 5}}\n']  # fmt: skip
    answer, mark = _upload(proxy, upstream, "seam-escaped-key-" + marker()[:6], pieces)
    assert answer.status_code == 403 and not reached(upstream, mark), answer.text[:300]


def test_part_edges_keep_the_lines_at_each_end():
    from shadowgate.stages.uploads import EDGE_BYTES
    from shadowgate.stages.uploads import PartEdges

    short = PartEdges(b"a\nb\nc")
    assert (short.head, short.tail, short.cut) == (b"a\nb\nc", b"a\nb\nc", False)
    data = b"x" * 20_000 + b"\n" + b"y" * 30_000 + b"\n" + b"z" * 100
    edges = PartEdges(data)
    assert edges.head == data[:20_001] and edges.tail == data[-EDGE_BYTES:]  # the last line is short: 8 KB


def test_an_escaped_path_is_the_same_upload(proxy_with, upstream):
    proxy = proxy_with("dlp: {secrets: block}\n")
    user = "seam-escaped-" + marker()[:6]
    upload = "upload_" + marker()[:10]
    ids = [_part(proxy, upstream, user, upload, data)[2] for data in KEY_CUT]
    sent = json.dumps({"part_ids": ids}).encode()
    answer, mark = post_marked(proxy, user, sent, f"https://api.openai.com/v1/%75ploads/{upload}/complete")
    assert answer.status_code == 403 and not reached(upstream, mark), answer.text[:300]


# --- a batch on an input file uploaded too large to read (red-team F79) -----------------------------

BUDGET = "budgets:\n  - {id: daily, per: user, tokens_per_day: 100000}\n"
LIMIT = 1024 * 1024  # shadowgate_max_parse_bytes for these tests: a 1.5 MB file is unread
LINE = {"custom_id": "r", "method": "POST", "url": "/v1/chat/completions",
        "body": {"model": "gpt-4.1", "max_tokens": 64000, "messages": [{"role": "user", "content": "x" * 300}]}}  # fmt: skip
BIG_BATCH = "\n".join(json.dumps({**LINE, "custom_id": f"r{i}"}) for i in range(3500)).encode()  # ~1.5 MB


def _batch(proxy, upstream, user: str, file_id: str):
    case = fake_answer(upstream, "/v1/batches", {"id": "batch_1", "object": "batch", "input_file_id": file_id})
    sent = json.dumps({"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"})
    try:
        return post_marked(
            proxy, user, sent.encode(), "https://api.openai.com/v1/batches", headers={"x-fake-case": case}
        )
    finally:
        upstream.cases.pop(case, None)


def _upload_file(proxy, upstream, user: str, data: bytes, purpose: str) -> str:
    file_id = "file-" + marker()[:12]
    case = fake_answer(upstream, "/v1/files", {"id": file_id, "object": "file", "purpose": purpose, "bytes": len(data)})
    mark = marker()
    try:
        with proxy.client(user) as client:
            answer = client.post("https://api.openai.com/v1/files", files={"file": ("b.jsonl", data, "application/jsonl")},
                                 data={"purpose": purpose}, timeout=60,
                                 headers={"x-attack": mark, "authorization": "Bearer sk-test", "x-fake-case": case})  # fmt: skip
    finally:
        upstream.cases.pop(case, None)
    assert answer.status_code == 200 and reached(upstream, mark), answer.text[:300]  # an upload spends nothing (F82)
    return file_id


@pytest.mark.parametrize("how", ["files", "uploads"])
def test_a_batch_on_a_file_too_large_to_read_is_refused_under_a_budget(proxy_with, upstream, how):
    proxy = proxy_with(BUDGET, shadowgate_max_parse_bytes=LIMIT)
    user = f"seam-unread-{how}-" + marker()[:6]
    if how == "files":
        file_id = _upload_file(proxy, upstream, user, BIG_BATCH, "batch")
    else:
        upload = "upload_" + marker()[:10]
        _answer, mark, _part_id = _part(proxy, upstream, user, upload, BIG_BATCH)
        assert reached(upstream, mark)
        file_id = "file-" + marker()[:12]
        case = fake_answer(upstream, f"/v1/uploads/{upload}/complete",
                           {"id": upload, "object": "upload", "status": "completed", "purpose": "batch",
                            "file": {"id": file_id, "object": "file", "purpose": "batch"}})  # fmt: skip
        try:
            done, mark = post_marked(proxy, user, b'{"part_ids": ["p"]}', UPLOAD.format(upload[7:]) + "/complete",
                                     headers={"x-fake-case": case})  # fmt: skip
        finally:
            upstream.cases.pop(case, None)
        assert done.status_code == 200 and reached(upstream, mark), done.text[:300]
    answer, mark = _batch(proxy, upstream, user, file_id)
    assert answer.status_code == 429 and not reached(upstream, mark), answer.text[:300]
    assert "too large to read" in answer.text


def test_a_batch_on_a_file_read_or_unknown_or_without_budget_passes(proxy_with, upstream):
    proxy = proxy_with(BUDGET, shadowgate_max_parse_bytes=LIMIT)
    user = "seam-read-" + marker()[:6]
    small = _upload_file(proxy, upstream, user, BIG_BATCH[:20_000].rsplit(b"\n", 1)[0].replace(b"64000", b"5"), "batch")
    for file_id in (small, "file-uploaded-elsewhere"):
        answer, mark = _batch(proxy, upstream, user, file_id)
        assert answer.status_code == 200 and reached(upstream, mark), answer.text[:300]
    # A large file that is no batch input (a PDF for assistants) is not remembered.
    pdf = _upload_file(proxy, upstream, user, b"%PDF-1.7\n" + b"x" * (LIMIT + 1000), "assistants")
    answer, mark = _batch(proxy, upstream, user, pdf)
    assert answer.status_code == 200 and reached(upstream, mark), answer.text[:300]


def test_without_a_token_budget_a_batch_on_an_unread_file_passes(proxy_with, upstream):
    proxy = proxy_with(
        "budgets:\n  - {id: rpm, per: user, requests_per_minute: 100}\n", shadowgate_max_parse_bytes=LIMIT
    )
    user = "seam-nobudget-" + marker()[:6]
    file_id = _upload_file(proxy, upstream, user, BIG_BATCH, "batch")
    answer, mark = _batch(proxy, upstream, user, file_id)
    assert answer.status_code == 200 and reached(upstream, mark), answer.text[:300]


def test_token_ids_cut_by_a_part_boundary_are_read(proxy_with, upstream):
    # Red-team F126: the seam was scanned as text only; a key written as token ids in a batch
    # line cut between two parts was never decoded.
    from tests.adversarial.test_token_id_prompts import encode

    proxy = proxy_with("dlp: {secrets: block}\n")
    ids = encode("deploy with AKIA2OGYBAH6STMMNXNN today")
    line = json.dumps({"custom_id": "1", "method": "POST", "url": "/v1/embeddings",
                       "body": {"model": "text-embedding-3-small", "input": ids}}).encode() + b"\n"  # fmt: skip
    cut = line.index(b"[") + 12
    answer, mark = _upload(proxy, upstream, "seam-tokens-" + marker()[:6], [line[:cut], line[cut:]])
    assert answer.status_code == 403 and not reached(upstream, mark), answer.text[:300]
