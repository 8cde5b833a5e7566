"""A chat app upload's file_type is what the file is, not only what its name says (red-team F109).

The threat model's answer to unread PDFs and images in chat apps is a rule on `file_type`. It
judged the client's file name only: a PDF named `report.txt`, `report` or `report.pdf ` passed a
`file_type: [pdf]` block, as did ChatGPT's blob PUT of PDF bytes sent as octet-stream. The type is
now read from the name, the declared type and the first bytes, and each is judged. Real mitmdump.
"""

from __future__ import annotations

import pytest

from tests.adversarial.calls import fake_answer
from tests.adversarial.wire import marker

NO_PDF = "rules:\n  - {id: no-pdf, match: {category: chat-web, activity: upload, file_type: [pdf]}, action: block}\n"
ONLY_TXT = (
    "rules:\n"
    "  - {id: txt-ok, match: {category: chat-web, activity: upload, file_type: [txt]}, action: allow}\n"
    "  - {id: no-uploads, match: {category: chat-web, activity: upload}, action: block}\n"
)
PDF = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
CLAUDE_UPLOAD = "https://claude.ai/api/0b5f2c1e-0000-4000-8000-000000000001/upload"


def _upload(proxy, upstream, user: str, files) -> tuple[int, bool]:
    mark = marker()
    with proxy.client(user) as client:
        answer = client.post(CLAUDE_UPLOAD, files=files, headers={"x-attack": mark, "sec-fetch-mode": "cors"})
    return answer.status_code, any(s.headers.get("x-attack") == mark for s in upstream.seen)


@pytest.mark.parametrize(
    ("name", "content_type"),
    [("report.txt", "text/plain"), ("report", "application/octet-stream"), ("report.pdf ", "application/pdf")],
    ids=["renamed", "no-extension", "trailing-space"],
)
def test_a_pdf_by_any_name_meets_a_pdf_rule(proxy_with, upstream, name, content_type):
    proxy = proxy_with(NO_PDF)
    status, reached = _upload(proxy, upstream, "ftype-" + marker()[:6], {"file": (name, PDF, content_type)})
    assert status == 403 and not reached


def test_an_allow_list_of_types_does_not_let_a_pdf_through_beside_a_text_file(proxy_with, upstream):
    proxy = proxy_with(ONLY_TXT)
    user = "ftype-allow-" + marker()[:6]
    status, reached = _upload(proxy, upstream, user, {"file": ("notes.txt", b"plain notes\n", "text/plain")})
    assert reached, status
    files = [("file", ("notes.txt", b"plain notes\n", "text/plain")), ("file", ("more.txt", PDF, "text/plain"))]
    status, reached = _upload(proxy, upstream, user, files)
    assert status == 403 and not reached


def test_chatgpts_blob_put_of_pdf_bytes_meets_a_pdf_rule(proxy_with, upstream):
    proxy = proxy_with(NO_PDF)
    mark = marker()
    with proxy.client("ftype-put-" + marker()[:6]) as client:
        client.post("https://chatgpt.com/backend-api/files", headers={"sec-fetch-mode": "cors"},
                    json={"file_name": "report.txt", "file_size": len(PDF), "use_case": "my_files"})  # fmt: skip
        answer = client.put("https://files.oaiusercontent.com/file-ftype", content=PDF,
                            headers={"x-ms-blob-type": "BlockBlob", "content-type": "application/octet-stream",
                                     "x-attack": mark, "sec-fetch-mode": "cors"})  # fmt: skip
    assert answer.status_code == 403 and not any(s.headers.get("x-attack") == mark for s in upstream.seen)


@pytest.mark.parametrize("second", ["same", "escaped"])
def test_a_size_rule_judges_a_blob_written_in_pieces_by_its_total(proxy_with, upstream, second):
    """Red-team F110: two Put Block pieces of 600 KB each passed a 1 MB upload rule (F125: the
    second under an escaped spelling of the blob's name)."""
    proxy = proxy_with(
        "rules:\n  - {id: no-big, match: {category: chat-web, activity: upload, min_file_bytes: 1000000}, action: block}\n"
    )
    name = "file-pieces-" + marker()[:8]
    case = fake_answer(upstream, f"/{name}", {}, host="files.oaiusercontent.com")  # the storage's 2xx
    reached = []
    try:
        with proxy.client("ftype-blocks-" + marker()[:6]) as client:
            for block in ("AAAA", "AAAB"):
                mark = marker()
                spelled = name.replace("f", "%66", 1) if block == "AAAB" and second == "escaped" else name
                client.put(f"https://files.oaiusercontent.com/{spelled}?comp=block&blockid={block}", content=b"a" * 600_000,
                           headers={"x-attack": mark, "sec-fetch-mode": "cors", "x-fake-case": case})  # fmt: skip
                reached.append(any(s.headers.get("x-attack") == mark for s in upstream.seen))
    finally:
        upstream.cases.pop(case, None)
    assert reached == [True, False]


def test_an_office_document_is_not_also_an_archive(proxy_with, upstream):
    """Red-team H2: a .docx (a ZIP container) was read as `zip` too, so an allow-list of Office
    types refused every Word document. A ZIP named .txt is still a zip."""
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("word/document.xml", "<w:document/>")
    docx = buffer.getvalue()
    policy = (
        "rules:\n"
        "  - {id: office-ok, match: {category: chat-web, activity: upload, file_type: [docx, xlsx, pptx]}, action: allow}\n"
        "  - {id: no-uploads, match: {category: chat-web, activity: upload}, action: block}\n"
    )
    proxy = proxy_with(policy)
    user = "ftype-office-" + marker()[:6]
    status, reached = _upload(proxy, upstream, user, {"file": ("plan.docx", docx, "application/octet-stream")})
    assert reached, status
    status, reached = _upload(proxy, upstream, user, {"file": ("plan.txt", docx, "text/plain")})
    assert status == 403 and not reached
