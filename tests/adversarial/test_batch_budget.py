"""Class 4: a batch cannot spend past a daily token budget (red-team F41).

A batch is accepted at once and runs later, where the proxy never sees its usage: its row said
no tokens, so three batches of 200 requests of max_tokens 64 000 (38 M output tokens) all passed
a 100 000-token budget. A batch now must fit what is left of today's budget whole (its prompts
and its requests' output caps, a request without one counted as 1024), and its row carries that
upper bound, marked estimated, so the budgets count it.
"""

from __future__ import annotations

import json

import pytest

from tests.adversarial.calls import post_marked
from tests.adversarial.calls import reached

POLICY = "budgets:\n  - {id: daily, per: user, tokens_per_day: 100000}\n"
HEADERS = {"x-api-key": "k", "anthropic-version": "2023-06-01"}
BATCHES = "https://api.anthropic.com/v1/messages/batches"


def _message_batch(requests: int, max_tokens: int) -> bytes:
    params = {
        "model": "claude-sonnet-4-5",
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "essay"}],
    }
    return json.dumps({"requests": [{"custom_id": f"r{i}", "params": params} for i in range(requests)]}).encode()


def test_a_batch_larger_than_the_budget_is_refused(proxy_with, upstream):
    proxy = proxy_with(POLICY)
    answer, mark = post_marked(proxy, "batch-huge", _message_batch(200, 64000), BATCHES, headers=HEADERS)
    assert answer.status_code == 429, answer.text[:200]
    assert "batch may use" in answer.text
    assert not reached(upstream, mark)
    [row] = proxy.rows("user_name = 'batch-huge'", expect=1)
    assert (row["decision"], row["rule_id"]) == ("rate_limit", "daily")


def test_accepted_batches_are_charged_their_upper_bound(proxy_with, upstream):
    proxy = proxy_with(POLICY)
    body = _message_batch(20, 2000)  # 40 000 output tokens at most
    first, mark = post_marked(proxy, "batch-two", body, BATCHES, headers=HEADERS)
    assert first.status_code == 200 and reached(upstream, mark), first.text[:200]
    [row] = proxy.rows("user_name = 'batch-two'", expect=1)
    assert (row["output_tokens"], row["usage_estimated"], row["operation"]) == (40000, True, "create_batch")
    assert row["input_tokens"] > 0
    second, mark = post_marked(proxy, "batch-two", body, BATCHES, headers=HEADERS)
    assert second.status_code == 200, second.text[:200]
    # 80 000 and more charged: a third would pass 100 000.
    third, mark = post_marked(proxy, "batch-two", body, BATCHES, headers=HEADERS)
    assert third.status_code == 429, third.text[:200]
    assert not reached(upstream, mark)


def _input_file(requests: int, max_tokens: int) -> tuple[bytes, str]:
    line = {"method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "gpt-4.1", "max_completion_tokens": max_tokens, "messages": [{"role": "user", "content": "x"}]}}  # fmt: skip
    lines = "\n".join(json.dumps({**line, "custom_id": f"r{i}"}) for i in range(requests))
    body = (
        '--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        '--b\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\n\r\n' + lines + "\r\n--b--\r\n"
    )
    return body.encode(), "multipart/form-data; boundary=b"


@pytest.mark.parametrize(("requests", "status"), [(100, 429), (10, 200)])
def test_an_openai_batch_input_file_is_charged_as_it_is_uploaded(proxy_with, upstream, requests, status):
    proxy = proxy_with(POLICY)
    body, content_type = _input_file(requests, 4000)
    user = f"batch-file-{requests}"
    answer, mark = post_marked(proxy, user, body, "https://api.openai.com/v1/files", content_type)
    assert answer.status_code == status, answer.text[:200]
    assert reached(upstream, mark) == (status == 200)
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    if status == 200:
        assert (row["output_tokens"], row["usage_estimated"]) == (requests * 4000, True)


def _file_of(lines: list[dict]) -> tuple[bytes, str]:
    text = "\n".join(json.dumps({**line, "custom_id": f"r{i}"}) for i, line in enumerate(lines))
    body = (
        '--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        '--b\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\n\r\n' + text + "\r\n--b--\r\n"
    )
    return body.encode(), "multipart/form-data; boundary=b"


def test_answers_per_request_count_in_a_batchs_bound(proxy_with, upstream):
    # 20 requests of n=128 and max_tokens 4000 may generate 10 M tokens (red-team F64).
    proxy = proxy_with(POLICY)
    chat = {"model": "gpt-4.1", "max_tokens": 4000, "n": 128, "messages": [{"role": "user", "content": "x"}]}
    body, content_type = _file_of([{"method": "POST", "url": "/v1/chat/completions", "body": chat}] * 20)
    answer, mark = post_marked(proxy, "batch-n", body, "https://api.openai.com/v1/files", content_type)
    assert answer.status_code == 429, answer.text[:200]
    assert not reached(upstream, mark)


def test_an_embeddings_batch_is_charged_no_output(proxy_with, upstream):
    # Embeddings generate no output: 100 short lines were refused under 100 000 tokens (red-team F65).
    proxy = proxy_with(POLICY)
    line = {"method": "POST", "url": "/v1/embeddings", "body": {"model": "text-embedding-3-small", "input": "doc"}}
    body, content_type = _file_of([line] * 100)
    answer, mark = post_marked(proxy, "batch-embed", body, "https://api.openai.com/v1/files", content_type)
    assert answer.status_code == 200, answer.text[:200]
    assert reached(upstream, mark)


def test_a_first_batch_of_the_day_meets_a_usd_budget_at_its_list_price(proxy_with, upstream):
    # Priced at the subject's average rate today, a first batch cost $0 (red-team F74).
    proxy = proxy_with("budgets:\n  - {id: usd, per: user, usd_per_day: 0.05}\n")
    answer, mark = post_marked(proxy, "batch-usd", _message_batch(50, 64000), BATCHES, headers=HEADERS)
    assert answer.status_code == 429 and "usd" in answer.text, answer.text[:200]
    assert not reached(upstream, mark)
    small, mark = post_marked(proxy, "batch-usd-ok", _message_batch(1, 100), BATCHES, headers=HEADERS)
    assert small.status_code == 200 and reached(upstream, mark), small.text[:200]


def test_a_batch_too_large_to_read_is_refused_under_a_token_budget(proxy_with, upstream):
    # Not read, it was charged nothing (red-team F79). A Message Batch is a batch whatever its size.
    proxy = proxy_with(POLICY, shadowgate_max_parse_bytes=4096)
    body = _message_batch(100, 64000)
    assert len(body) > 4096
    answer, mark = post_marked(proxy, "batch-big", body, BATCHES, headers=HEADERS)
    assert answer.status_code == 413 and "budget 'daily'" in answer.text, answer.text[:200]
    assert not reached(upstream, mark)


def test_a_large_upload_that_is_no_batch_goes_through_under_a_budget(proxy_with, upstream):
    # Most large /v1/files uploads are documents; an unread body does not say its purpose, so the
    # budget does not refuse it (red-team F82; a large batch file there stays open: threat model).
    proxy = proxy_with(POLICY, shadowgate_max_parse_bytes=4096)
    pdf = b"%PDF-1.7\n" + bytes(range(256)) * 2000  # 512 KB: its bytes / 4 are over the 100 000-token budget
    body = (
        b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.pdf"\r\nContent-Type: application/pdf\r\n\r\n'
        + pdf + b"\r\n--b--\r\n"
    )  # fmt: skip
    for _ in range(2):  # an upload spends nothing: its size held no reservation against the budget (F82)
        answer, mark = post_marked(
            proxy, "big-pdf", body, "https://api.openai.com/v1/files", "multipart/form-data; boundary=b"
        )
        assert answer.status_code == 200 and reached(upstream, mark), answer.text[:200]


def test_a_batch_of_requests_without_an_output_cap_is_refused_under_a_token_budget(proxy_with, upstream):
    # Counted at 1024 each, 90 uncapped o3 requests passed a budget they could spend 90 times over
    # (red-team F64): without a cap there is no bound to fit.
    proxy = proxy_with(POLICY)
    line = {
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {"model": "o3", "messages": [{"role": "user", "content": "x"}]},
    }
    body, content_type = _file_of([line] * 3)
    answer, mark = post_marked(proxy, "batch-uncapped", body, "https://api.openai.com/v1/files", content_type)
    assert answer.status_code == 429 and "max_tokens" in answer.text, answer.text[:200]
    assert not reached(upstream, mark)


@pytest.mark.parametrize(
    ("url", "body", "content_type"),
    [
        # Moderations generate no output (red-team F83).
        ("https://api.openai.com/v1/files", None, None),
        # A Gemini embeddings batch, and a batch of an uploaded file (F84).
        ("https://generativelanguage.googleapis.com/v1beta/models/gemini-embedding-001:asyncBatchEmbedContent",
         json.dumps({"batch": {"input_config": {"requests": {"requests": [
             {"request": {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "doc"}]}}}]}}}}).encode(),
         "application/json"),
        ("https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:batchGenerateContent",
         json.dumps({"batch": {"input_config": {"file_name": "files/abc"}}}).encode(), "application/json"),
    ],
    ids=["moderations-file", "gemini-embed-batch", "gemini-file-batch"],
)  # fmt: skip
def test_batches_without_output_pass_under_a_token_budget(proxy_with, upstream, url, body, content_type):
    proxy = proxy_with(POLICY)
    if body is None:
        line = {"method": "POST", "url": "/v1/moderations", "body": {"model": "omni-moderation-latest", "input": "x"}}
        body, content_type = _file_of([line] * 10)
    answer, mark = post_marked(proxy, f"no-output-{len(url)}", body, url, content_type)
    assert answer.status_code != 429 and reached(upstream, mark), answer.text[:200]  # the fake may 404 a path


def test_a_batch_on_a_model_without_a_price_is_refused_under_a_usd_budget(proxy_with, upstream):
    # Priced at the subject's average rate (0 before a first priced call), it passed (red-team F92).
    proxy = proxy_with("budgets:\n  - {id: usd, per: user, usd_per_day: 0.05}\n")
    line = {"method": "POST", "url": "/v1/chat/completions", "body": {
        "model": "ft:gpt-4.1-2025-04-14:acme::abc123", "max_tokens": 1000, "messages": [{"role": "user", "content": "x"}]}}  # fmt: skip
    body, content_type = _file_of([line] * 5)
    answer, mark = post_marked(proxy, "batch-unpriced", body, "https://api.openai.com/v1/files", content_type)
    # Permanent: a 429 would have the SDKs retry it (round-6b G9).
    assert answer.status_code == 403 and "known price" in answer.text, answer.text[:200]
    assert not reached(upstream, mark)


def test_a_background_response_on_an_unpriced_deployment_passes_a_usd_budget(proxy_with, upstream):
    # An Azure deployment's name has no list price: a background response on it is one call, charged
    # its token bound as in the foreground, not refused as an unpriced batch (round-6b G9).
    proxy = proxy_with("budgets:\n  - {id: usd, per: user, usd_per_day: 50}\n")
    body = {"model": "o3-pro-prod", "background": True, "max_output_tokens": 20000, "input": "Write a report."}
    answer, mark = post_marked(
        proxy, "bg-azure", json.dumps(body).encode(), "https://acme-eastus.openai.azure.com/openai/v1/responses",
        headers={"api-key": "azure-test"},
    )  # fmt: skip
    assert answer.status_code != 429 and reached(upstream, mark), answer.text[:200]
    [row] = proxy.rows("user_name = 'bg-azure'", expect=1)
    assert row["decision"] == "allow"


def test_a_jsonl_upload_that_is_no_batch_passes_under_a_token_budget(proxy_with, upstream):
    # An e-mail export's `body` objects are no batch requests (red-team F93): no method, no URL.
    proxy = proxy_with(POLICY)
    lines = [{"subject": f"s{i}", "body": {"text": "hello", "html": "<p>hello</p>"}} for i in range(20)]
    text = "\n".join(json.dumps(line) for line in lines)
    body = (
        '--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nuser_data\r\n'
        '--b\r\nContent-Disposition: form-data; name="file"; filename="mail.jsonl"\r\n\r\n' + text + "\r\n--b--\r\n"
    ).encode()
    answer, mark = post_marked(
        proxy, "jsonl-mail", body, "https://api.openai.com/v1/files", "multipart/form-data; boundary=b"
    )
    assert answer.status_code == 200 and reached(upstream, mark), answer.text[:200]


@pytest.mark.parametrize("count", ["8", 8.0, "8e0"])
def test_a_gemini_batch_counts_candidates_as_the_api_reads_them(proxy_with, upstream, count):
    # proto3 JSON takes an int32 as a number or a string: "8" passed where 8 was refused (red-team F104).
    proxy = proxy_with("budgets:\n  - {id: daily, per: user, tokens_per_day: 500000}\n")
    config = {"maxOutputTokens": 8192, "candidateCount": count}
    requests = [{"request": {"contents": [{"parts": [{"text": "x"}]}], "generationConfig": config}}] * 20
    body = json.dumps({"batch": {"input_config": {"requests": {"requests": requests}}}}).encode()
    url = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:batchGenerateContent"
    answer, mark = post_marked(proxy, f"gemini-candidates-{count}", body, url)
    assert answer.status_code == 429 and "batch may use" in answer.text, answer.text[:200]
    assert not reached(upstream, mark)


def test_a_batch_of_legacy_completions_counts_best_of(proxy_with, upstream):
    # best_of answers are generated and billed server-side, though n are returned (red-team F104).
    proxy = proxy_with(POLICY)
    line = {"method": "POST", "url": "/v1/completions",
            "body": {"model": "gpt-3.5-turbo-instruct", "prompt": "x", "max_tokens": 4000, "best_of": 20}}  # fmt: skip
    body, content_type = _file_of([line] * 10)
    answer, mark = post_marked(proxy, "batch-best-of", body, "https://api.openai.com/v1/files", content_type)
    assert answer.status_code == 429 and "batch may use" in answer.text, answer.text[:200]
    assert not reached(upstream, mark)


def test_legacy_completions_lines_without_a_cap_have_the_apis_default(proxy_with, upstream):
    # /v1/completions generates 16 tokens when max_tokens is absent (the API's default): such a
    # batch was refused as unbounded (round-6b G26). Chat lines without a cap still are.
    proxy = proxy_with(POLICY)
    line = {"method": "POST", "url": "/v1/completions", "body": {"model": "gpt-3.5-turbo-instruct", "prompt": "Say hi"}}
    body, content_type = _file_of([{**line, "custom_id": f"r{i}"} for i in range(20)])
    answer, mark = post_marked(proxy, "batch-legacy", body, "https://api.openai.com/v1/files", content_type)
    assert reached(upstream, mark), answer.text[:200]
    [row] = proxy.rows("user_name = 'batch-legacy'", expect=1)
    assert row["output_tokens"] == 20 * 16
