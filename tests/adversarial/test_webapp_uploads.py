"""Chat-app file bytes in a write form the catalog's `when:` did not describe (red-team F28).

ChatGPT's file storage endpoint matched `PUT *.oaiusercontent.com/files/...` only with
`x-ms-blob-type: BlockBlob` (the single-shot Azure Put Blob the app sends). The SAS URL takes the
same bytes as a Put Block (`?comp=block&blockid=...`, no blob type), an AppendBlob, or an Append
Block (`?comp=appendblock`): those matched no endpoint, were not scanned and left no row. Every
write to the storage host is now an upload, scanned as a file; and a request on a candidate
path whose headers or body make it none of the endpoints (another GraphQL query) is scanned as
an unlisted request is. Through a real mitmdump: what reached the upstream, what the client
got, and the web_activity row.
"""

from __future__ import annotations

import json

import pytest

from tests.adversarial.wire import marker

AWS = "AKIA2OGYBAH6STMMNXNN"
FILE = "https://files.oaiusercontent.com/files/file-abc123/raw"
NOTES = f"meeting notes\naws key {AWS}\n".encode()


@pytest.fixture(scope="module")
def gate(module_proxy_with):
    return module_proxy_with("dlp: {secrets: block, pii: log}\n")


def _send(proxy, upstream, user: str, method: str, url: str, content: bytes, headers: dict[str, str]):
    mark = marker()
    with proxy.client(user) as client:
        answer = client.request(method, url, content=content, headers={"x-attack": mark, **headers})
    return answer, [s for s in upstream.seen if s.headers.get("x-attack") == mark]


def _row(proxy, user: str) -> dict:
    [row] = proxy.rows(f"user_name = '{user}'", expect=1, table="web_activity")
    return row


@pytest.mark.parametrize(
    ("method", "query", "headers"),
    [
        ("PUT", "", {"x-ms-blob-type": "BlockBlob"}),  # what the app sends (held before too)
        ("PUT", "?comp=block&blockid=QUFBQQ%3D%3D", {}),
        ("PUT", "", {"x-ms-blob-type": "AppendBlob"}),
        ("PUT", "?comp=appendblock", {}),
        ("POST", "", {}),
    ],
    ids=["put-blob", "put-block", "append-blob", "append-block", "post"],
)
def test_file_bytes_in_any_write_form_are_scanned(gate, upstream, method, query, headers):
    user = f"wu-f28-{method.lower()}-{len(query)}-{'-'.join(headers.values()).lower() or 'none'}"
    answer, seen = _send(gate, upstream, user, method, FILE + query, NOTES, {"content-type": "text/plain", **headers})
    assert seen == [], "the file with the key reached ChatGPT's storage"
    assert answer.status_code == 403
    row = _row(gate, user)
    expected = "chatgpt.upload-bytes" if method == "PUT" else "chatgpt.upload-bytes-post"
    assert (row["endpoint"], row["activity"], row["dlp_action"], row["dlp_findings"], row["file_bytes"]) == (
        expected, "upload", "block", "AWS_ACCESS_KEY:1", len(NOTES)
    )  # fmt: skip


def test_a_clean_put_block_is_forwarded_and_recorded(gate, upstream):
    answer, seen = _send(
        gate, upstream, "wu-f28-clean", "PUT", FILE + "?comp=block&blockid=QUFBQg%3D%3D", b"just notes\n", {}
    )
    assert answer.status_code != 403 and [s.body for s in seen] == [b"just notes\n"]
    row = _row(gate, "wu-f28-clean")
    assert (row["endpoint"], row["activity"], row["dlp_action"]) == ("chatgpt.upload-bytes", "upload", None)


def test_a_request_that_is_not_its_candidate_endpoint_is_still_scanned(gate, upstream):
    """Poe's GraphQL path is the prompt endpoint only for queryName SendMessageMutation; another
    query on it used to count as nothing, unscanned."""
    body = {"queryName": "EditMessageMutation", "variables": {"text": f"aws_access_key_id={AWS}"}}
    answer, seen = _send(
        gate, upstream, "wu-f28-poe", "POST", "https://poe.com/api/gql_POST", json.dumps(body).encode(),
        {"content-type": "application/json"},
    )  # fmt: skip
    assert seen == [] and answer.status_code == 403
    row = _row(gate, "wu-f28-poe")
    assert (row["app"], row["endpoint"], row["dlp_findings"]) == ("poe", "unmatched", "AWS_ACCESS_KEY:1")
