"""multipart uploads the proxy could read differently from the server (red team F4), through a
real mitmdump.

- The boundary: `xboundary=AAA; boundary=BBB` or `boundary=AAA; boundary=BBB` used to make the
  proxy split on AAA while the server (Werkzeug: the parameter named exactly boundary, the last of
  duplicates) reads BBB, the secret's parts being "preamble" to the proxy. The parameter is now
  parsed by name, a repeated or RFC 2231 boundary is refused, and so is a body that does not open
  with the delimiter, holds it inside a part (a bare-LF split) or carries other parts after it.
- A text file with ANSI colour codes (>1 % control characters) was taken for binary, unscanned.
- Part headers (`name=`, `filename=`, `filename*=`) were never scanned.

Each test asserts what reached the fake upstream, what the client got and the row written.
"""

from __future__ import annotations

import pytest

from tests.adversarial.calls import post_marked
from tests.adversarial.calls import reached

AWS = "AKIA2OGYBAH6STMMNXNN"
GHP = "ghp_R7mK2pX9vL4qW8nT3yB6cF1hJ5sD0gA2eZ4u"
POLICY = "dlp: {secrets: block, pii: log}\n"
FILES = "https://api.openai.com/v1/files"
CLAUDE_UPLOAD = "https://claude.ai/api/0b9e0000-1111-2222-3333-444455556666/upload"
DECOY = (b'Content-Disposition: form-data; name="purpose"', b"assistants")
SECRET_FILE = (
    b'Content-Disposition: form-data; name="file"; filename="notes.txt"\r\nContent-Type: text/plain',
    f"aws_access_key_id={AWS}".encode(),
)


@pytest.fixture(scope="module")
def gate(module_proxy_with):
    return module_proxy_with(POLICY)


def _multipart(boundary: bytes, parts) -> bytes:
    out = b""
    for head, content in parts:
        out += b"--" + boundary + b"\r\n" + head + b"\r\n\r\n" + content + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


def _upload(proxy, upstream, user: str, body: bytes, content_type: str):
    """(the client's answer, what the upstream got of this request, the row)."""
    answer, mark = post_marked(proxy, user, body, FILES, content_type)
    seen = [s for s in upstream.seen if s.headers.get("x-attack") == mark]
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    return answer, seen, row


def _claude_upload(proxy, upstream, user: str, head: bytes, data: bytes) -> dict:
    """A file part uploaded to the Claude web app: refused (403, nothing upstream); its row."""
    boundary = b"----WebKitFormBoundary7MA4"
    answer, mark = post_marked(
        proxy,
        user,
        _multipart(boundary, [(head, data)]),
        CLAUDE_UPLOAD,
        "multipart/form-data; boundary=" + boundary.decode(),
    )
    assert not reached(upstream, mark) and answer.status_code == 403, answer.text[:200]
    [row] = proxy.rows(f"user_name = '{user}'", expect=1, table="web_activity")
    return row


# Werkzeug reads boundary=BBB in each of these headers; the proxy used to read AAA.
SMUGGLED = _multipart(b"BBB", [DECOY, SECRET_FILE]) + b"\r\n" + _multipart(b"AAA", [DECOY])


@pytest.mark.parametrize(
    ("user", "content_type", "body"),
    [
        ("mp-xboundary", "multipart/form-data; xboundary=AAA; boundary=BBB", SMUGGLED),
        ("mp-dup-boundary", "multipart/form-data; boundary=AAA; boundary=BBB", SMUGGLED),
        ("mp-dup-case", "multipart/form-data; boundary=BBB; BOUNDARY=AAA", SMUGGLED),
        ("mp-rfc2231", "multipart/form-data; boundary*=UTF-8''BBB; boundary=AAA", SMUGGLED),
        ("mp-two-headers", "multipart/form-data; boundary=AAA, multipart/form-data; boundary=BBB", SMUGGLED),
        # The decoy first: the proxy's boundary is AAA, the BBB parts come after its close delimiter.
        (
            "mp-epilogue",
            "multipart/form-data; boundary=AAA",
            _multipart(b"AAA", [DECOY]) + _multipart(b"BBB", [DECOY, SECRET_FILE]),
        ),  # fmt: skip
        (
            "mp-preamble",
            "multipart/form-data; boundary=BBB",
            b"preamble line\r\n--AAA\r\n\r\nx\r\n" + _multipart(b"BBB", [DECOY]),
        ),  # fmt: skip
        # A bare LF before the delimiter: one binary-looking part to the proxy, two to a lenient server.
        (
            "mp-bare-lf",
            "multipart/form-data; boundary=BBB",
            _multipart(
                b"BBB",
                [
                    (
                        b'Content-Disposition: form-data; name="img"; filename="a.png"',
                        b"\x89PNG\x00\xff\xfe\n--BBB\r\n" + SECRET_FILE[0] + b"\r\n\r\n" + SECRET_FILE[1],
                    )
                ],
            ),
        ),  # fmt: skip
    ],
)
def test_a_body_a_server_could_split_otherwise_is_refused(gate, upstream, user, content_type, body):
    answer, seen, row = _upload(gate, upstream, user, body, content_type)
    assert seen == [], "the upload reached the upstream although the server may read parts the proxy never scanned"
    assert answer.status_code == 403 and "cannot be read" in answer.text
    assert row["dlp_action"] == "error" and row["operation"] == "upload_file"


def test_a_quoted_boundary_with_a_look_alike_parameter_is_read_by_name(gate, upstream):
    """`xboundary=` is another parameter: the real one (quoted) is the one split on, and its secret found."""
    body = _multipart(b"B B:1", [DECOY, SECRET_FILE])
    answer, seen, row = _upload(
        gate, upstream, "mp-quoted", body, 'multipart/form-data; xboundary=AAA; boundary="B B:1"'
    )
    assert seen == [] and answer.status_code == 403
    assert (row["dlp_action"], row["dlp_findings"]) == ("block", "AWS_ACCESS_KEY:1")


def test_a_plain_upload_still_passes_byte_for_byte(gate, upstream):
    body = _multipart(b"BBB", [DECOY, (SECRET_FILE[0], b"just some notes\n")])
    answer, seen, row = _upload(gate, upstream, "mp-plain", body, "multipart/form-data; boundary=BBB")
    assert answer.status_code == 200 and [s.body for s in seen] == [body]
    assert row["dlp_action"] is None and row["decision"] == "allow"


def test_a_text_file_with_ansi_colours_is_scanned(gate, upstream):
    log = "".join(f"\x1b[32mINFO\x1b[0m step {i} ok\n" for i in range(8)) + f"aws_access_key_id={AWS}\n"
    part = (b'Content-Disposition: form-data; name="file"; filename="build.log"\r\nContent-Type: text/plain',
            log.encode())  # fmt: skip
    answer, seen, row = _upload(gate, upstream, "mp-ansi", _multipart(b"BBB", [DECOY, part]),
                                "multipart/form-data; boundary=BBB")  # fmt: skip
    assert seen == [], "a text file with >1% control characters was taken for binary"
    assert answer.status_code == 403
    assert (row["dlp_action"], row["dlp_findings"]) == ("block", "AWS_ACCESS_KEY:1")


def test_a_text_file_padded_with_controls_and_a_nul_is_scanned(gate, upstream):
    content = b"\x01\x02\x03" * 200 + b"\x00" + f"\ntoken {GHP}\n".encode()
    part = (b'Content-Disposition: form-data; name="file"; filename="dump.bin"', content)
    answer, seen, row = _upload(gate, upstream, "mp-controls", _multipart(b"BBB", [DECOY, part]),
                                "multipart/form-data; boundary=BBB")  # fmt: skip
    assert seen == [] and answer.status_code == 403
    assert (row["dlp_action"], row["dlp_findings"]) == ("block", "GITHUB_TOKEN:1")


def test_binary_media_still_passes(gate, upstream):
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
    part = (b'Content-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png', png)
    body = _multipart(b"BBB", [DECOY, part])
    answer, seen, row = _upload(gate, upstream, "mp-png", body, "multipart/form-data; boundary=BBB")
    assert answer.status_code == 200 and [s.body for s in seen] == [body] and row["dlp_action"] is None


@pytest.mark.parametrize(
    ("user", "head", "found"),
    [
        ("mp-hdr-name", b'Content-Disposition: form-data; name="' + GHP.encode() + b'"', "GITHUB_TOKEN:1"),
        (
            "mp-hdr-filename",
            b'Content-Disposition: form-data; name="file"; filename="' + AWS.encode() + b'.txt"',
            "AWS_ACCESS_KEY:1",
        ),  # fmt: skip
        # RFC 5987: every letter percent-encoded, so only the decoded value shows the key.
        (
            "mp-hdr-filename-star",
            b"Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''"
            + "".join(f"%{ord(c):02X}" for c in AWS).encode()
            + b".txt",
            "AWS_ACCESS_KEY:1",
        ),  # fmt: skip
        # A quoted-pair escape: the server unquotes it, the bytes as sent show no key.
        (
            "mp-hdr-escaped",
            b'Content-Disposition: form-data; name="file"; filename="AK\\IA2OGYBAH6STMMNXNN.txt"',
            "AWS_ACCESS_KEY:1",
        ),  # fmt: skip
    ],
)
def test_a_secret_in_a_part_header_is_found(gate, upstream, user, head, found):
    answer, seen, row = _upload(gate, upstream, user, _multipart(b"BBB", [(head, b"hello")]),
                                "multipart/form-data; boundary=BBB")  # fmt: skip
    assert seen == [], "a key in a part's field or file name reached the upstream"
    assert answer.status_code == 403
    assert (row["dlp_action"], row["dlp_findings"]) == ("block", found)


def test_a_secret_in_a_file_name_on_a_chat_app_upload_is_found(gate, upstream):
    """The chat apps' multipart uploads (Claude's) share the parser: a key in the file name blocks."""
    head = (
        b'Content-Disposition: form-data; name="file"; filename="'
        + GHP.encode()
        + b'.md"\r\nContent-Type: text/markdown'
    )
    row = _claude_upload(gate, upstream, "mp-claude", head, b"# Notes\nkeep private")
    assert (row["endpoint"], row["dlp_action"], row["dlp_findings"]) == ("claude.upload", "block", "GITHUB_TOKEN:1")


def test_redact_mode_refuses_a_secret_in_a_part_header(gate, proxy_with, upstream):
    """A header value cannot be rewritten in place as a body part can: the upload is refused."""
    proxy = proxy_with("dlp: {secrets: redact, pii: log}\n")
    head = b'Content-Disposition: form-data; name="file"; filename="' + AWS.encode() + b'.txt"'
    answer, seen, row = _upload(proxy, upstream, "mp-hdr-redact", _multipart(b"BBB", [(head, b"hello")]),
                                "multipart/form-data; boundary=BBB")  # fmt: skip
    assert seen == [] and answer.status_code == 403
    assert (row["dlp_action"], row["dlp_findings"]) == ("block", "AWS_ACCESS_KEY:1")


# --- the parser on its own: what it accepts as one reading, what it refuses -------------------


@pytest.mark.parametrize(
    ("content_type", "body", "parts"),
    [
        # The boundary text inside a line is content, not a delimiter.
        ("multipart/form-data; boundary=a", b"--a\r\n\r\ntext --all of it\r\n--a--\r\n", 1),
        ('multipart/form-data; charset=utf-8; boundary="q;x"', b"--q;x\r\n\r\none\r\n--q;x\r\n\r\ntwo\r\n--q;x--", 2),
        ("multipart/form-data;boundary=XyZ ;", b"--XyZ\r\n\r\none\r\n--XyZ--\r\n\r\n", 1),
    ],
)
def test_the_parser_reads_plain_bodies(content_type, body, parts):
    from shadowgate.wireformats.multipart import parse_multipart

    assert len(parse_multipart(body, content_type)) == parts


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data; boundary=a", b"--a\r\n\r\nx\n--a\r\n\r\ny\r\n--a--\r\n"),  # bare LF
        ("multipart/form-data; boundary=a", b"--a\r\n\r\nx\r--a\r\n\r\ny\r\n--a--\r\n"),  # bare CR
        ("multipart/form-data; boundary=a", b"\r\n--a\r\n\r\nx\r\n--a--\r\n"),  # not at the start
        ("multipart/form-data; boundary=a", b"--a\r\nA: 1\r\nA: 2\r\n\r\nx\r\n--a--\r\n"),  # a repeated header
        ("multipart/form-data; boundary=a", b"--a\r\n\r\nx\r\n--a--\r\n  --b\r\n"),  # other parts after it
        ("multipart/form-data; boundary=", b"--\r\n\r\nx\r\n----\r\n"),
        ('multipart/form-data; boundary="a', b"--a\r\n\r\nx\r\n--a--\r\n"),  # an open quote
    ],
)
def test_the_parser_refuses_bodies_with_two_readings(content_type, body):
    from shadowgate.wireformats.decoding import UndecodableBody
    from shadowgate.wireformats.multipart import parse_multipart

    with pytest.raises(UndecodableBody):
        parse_multipart(body, content_type)


@pytest.mark.parametrize(
    ("name", "ctype", "data"),
    [
        ("n.dat", "application/octet-stream", f"notes: {GHP}\n".encode("utf-16-le")),  # no BOM: NUL bytes
        ("sheet.csv", "text/csv", f"José;{GHP}\n".encode("cp1252")),
        ("log.bin", "application/octet-stream", b"build \xff ok\n" + GHP.encode() + b"\n"),
    ],
    ids=["utf16-no-bom", "cp1252", "stray-byte"],
)
def test_a_chat_app_upload_not_in_utf8_is_read(gate, upstream, name, ctype, data):
    """Red-team F18 in the web-app reader: a text file that is not UTF-8 used to be 'binary'."""
    head = f'Content-Disposition: form-data; name="file"; filename="{name}"\r\nContent-Type: {ctype}'.encode()
    user = f"mp-claude-{name.split('.')[0]}"
    row = _claude_upload(gate, upstream, user, head, data)
    assert (row["endpoint"], row["dlp_action"], row["dlp_findings"]) == ("claude.upload", "block", "GITHUB_TOKEN:1")


def _docx(main_part: str, body: str) -> bytes:
    import io
    import zipfile

    ns = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"'
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(
            "_rels/.rels",
            '<?xml version="1.0"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            f'officeDocument" Target="{main_part}"/></Relationships>',
        )
        z.writestr(main_part, f'<?xml version="1.0"?><w:document {ns}><w:body>{body}</w:body></w:document>')
    return buf.getvalue()


def _run(text: str) -> str:
    return f"<w:r><w:rPr><w:b/></w:rPr><w:t>{text}</w:t></w:r>"


@pytest.mark.parametrize(
    ("main_part", "body"),
    [
        ("word/document.xml", f"<w:p>{_run('token ' + GHP[:9])}{_run(GHP[9:])}</w:p>"),  # Word's runs
        ("word/document.xml", f"<w:p>{_run('token ' + ''.join(f'&#{ord(c)};' for c in GHP))}</w:p>"),
        ("word/main.xml", f"<w:p>{_run('token ' + GHP)}</w:p>"),  # main part renamed in _rels
    ],
    ids=["split-runs", "char-refs", "renamed-part"],
)
def test_a_key_in_a_docx_is_found_as_word_shows_it(gate, upstream, main_part, body):
    """Red-team F37: the .docx reader put a space at every tag, read no character references and
    only the usual part names."""
    head = (
        b'Content-Disposition: form-data; name="file"; filename="notes.docx"\r\nContent-Type: application/octet-stream'
    )
    user = f"mp-docx-{main_part.split('/')[1][:4]}-{len(body) % 97}"
    row = _claude_upload(gate, upstream, user, head, _docx(main_part, body))
    assert (row["dlp_action"], row["dlp_findings"]) == ("block", "GITHUB_TOKEN:1")
