"""Chat web apps: the catalog's endpoints, field paths, decoders and classification.

Fixtures (tests/fixtures/webapps/*.json) are requests reconstructed from public clients and
captures, each with its sources and their dates; `expect: null` marks a request that must count as
nothing (telemetry, anti-bot checks, prepare calls, other GraphQL queries).
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote_plus

import pytest

from shadowgate.config.catalog import load_catalog
from shadowgate.config.policy_accounts import AccountsPolicy
from shadowgate.config.yamlfile import ConfigError
from shadowgate.webapps.catalog import load_web_apps
from shadowgate.webapps.classify import classify
from shadowgate.webapps.codecs import FormBody
from shadowgate.webapps.codecs import MultipartBody
from shadowgate.webapps.codecs import decode_body
from shadowgate.webapps.paths import PathError
from shadowgate.webapps.paths import compile_path
from shadowgate.wireformats import PARSERS

FIXTURES = Path(__file__).parent / "fixtures" / "webapps"
APPS = load_web_apps()
CATALOG = load_catalog(known_parsers=PARSERS)
ACCOUNTS = AccountsPolicy(
    {
        "chatgpt": frozenset({"ws-4f1c0000-aaaa-bbbb-cccc-000000000001"}),
        "claude": frozenset({"0b9e0000-1111-2222-3333-444455556666"}),
    }
)


def request_of(fixture: dict) -> tuple[dict, bytes]:
    req = fixture["request"]
    if "json" in req:  # what the browser's JSON.stringify sends: compact, not ASCII-escaped
        body = json.dumps(req["json"], separators=(",", ":"), ensure_ascii=False).encode()
    else:
        body = req.get("body", "").encode()
    return req, body


def classify_fixture(fixture: dict, accounts: AccountsPolicy = ACCOUNTS):
    req, body = request_of(fixture)
    provider = CATALOG.match_host(req["host"])
    return classify(
        APPS,
        provider.id if provider else None,
        req["host"],
        req["method"],
        req["path"],
        {k.lower(): v for k, v in req["headers"].items()},
        body,
        accounts,
        transport=req.get("transport", "http"),
    )


def fixtures() -> list[tuple[str, dict]]:
    return [(f.stem, json.loads(f.read_text())) for f in sorted(FIXTURES.glob("*.json"))]


@pytest.mark.parametrize(("name", "fixture"), fixtures(), ids=[n for n, _ in fixtures()])
def test_fixture_classifies_as_its_sources_say(name: str, fixture: dict) -> None:
    assert fixture["provenance"]["sources"], "every fixture names its sources"
    facts = classify_fixture(fixture)
    expect = fixture["expect"]
    if expect is None:
        assert facts is None, f"{name} must count as nothing, got {facts and facts.endpoint.id}"
        return
    assert facts is not None
    assert facts.endpoint.id == expect["endpoint"]
    assert facts.activity == expect["activity"]
    assert facts.parse_status == expect["parse_status"]
    for key in ("texts", "model", "conversation", "temporary", "account_kind"):
        if key in expect:
            assert getattr(facts, key) == expect[key], key
    if "files" in expect:
        assert [[f.name, f.size, f.extension] for f in facts.files] == expect["files"]
    if "wire_format" in expect:
        assert facts.endpoint.wire_format == expect["wire_format"]


def test_every_app_in_scope_has_a_prompt_endpoint_with_source_and_date() -> None:
    in_scope = {"chatgpt", "claude", "gemini-app", "microsoft-copilot", "perplexity-web", "deepseek-chat", "grok",
                "le-chat", "meta-ai", "poe"}  # fmt: skip
    assert in_scope <= set(APPS.apps)
    for app in in_scope:
        prompts = [e for e in APPS.apps[app].endpoints if e.activity == "prompt"]
        assert prompts, app
        for e in APPS.apps[app].endpoints:
            assert e.source and e.verified is not None, e.id
            assert CATALOG.providers[app].category == "chat-web"


def test_every_app_has_a_fixture() -> None:
    covered = {json.loads(f.read_text())["expect"]["endpoint"].split(".")[0] for f in FIXTURES.glob("*.json")
               if json.loads(f.read_text())["expect"]}  # fmt: skip
    assert set(APPS.apps) <= covered


# --- accounts ----------------------------------------------------------------------------------


def test_account_kinds_follow_the_policy_ids() -> None:
    prompt = json.loads((FIXTURES / "chatgpt-prompt.json").read_text())
    assert classify_fixture(prompt).account_kind == "corporate"
    other = json.loads(json.dumps(prompt))
    other["request"]["headers"]["chatgpt-account-id"] = "ws-someone-else"
    assert classify_fixture(other).account_kind == "other-workspace"
    # Without the company's ids nobody can tell its workspace from another one.
    assert classify_fixture(prompt, AccountsPolicy()).account_kind == "unknown"
    del other["request"]["headers"]["chatgpt-account-id"]
    assert classify_fixture(other).account_kind == "personal"
    claude = json.loads((FIXTURES / "claude-prompt.json").read_text())
    claude["request"]["path"] = claude["request"]["path"].replace("0b9e0000", "deadbeef")
    assert classify_fixture(claude).account_kind == "other-workspace"


# --- catalog validation ------------------------------------------------------------------------


def _catalog_with(tmp_path: Path, endpoint: str) -> Path:
    text = (
        "version: 1\ncategories: {chat-web: x}\nwire_formats: {}\n"
        "web_apps:\n  chatgpt:\n    endpoints:\n" + endpoint + "providers:\n"
        "  - {id: chatgpt, name: C, vendor: O, category: chat-web, hosts: [chatgpt.com]}\n"
    )
    path = tmp_path / "providers.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        (
            "      - {id: p, method: POST, path: '/x', activity: chat, source: s, verified: 2026-01-01}\n",
            "activity must",
        ),
        ("      - {id: p, method: POST, path: '/x(', activity: prompt, source: s, verified: 2026-01-01}\n", "bad path"),
        ("      - {id: p, method: POST, path: '/x', activity: prompt, verified: 2026-01-01}\n", "needs 'source'"),
        (
            "      - {id: p, method: POST, path: '/x', activity: prompt, source: s, verified: 2026-01-01, text: ['a[?']}\n",
            "text: ",
        ),
        (
            "      - {id: p, method: POST, path: '/x', activity: prompt, source: s, verified: 2026-01-01, bogus: 1}\n",
            "unknown keys",
        ),
        (
            "      - {id: p, method: POST, path: '/x', activity: prompt, source: s, verified: 2026-01-01,"
            " account: {path_group: org}}\n",
            "no group",
        ),
    ],
)
def test_a_broken_endpoint_names_file_and_line(tmp_path: Path, endpoint: str, reason: str) -> None:
    path = _catalog_with(tmp_path, endpoint)
    with pytest.raises(ConfigError) as e:
        load_web_apps(path)
    assert reason in str(e.value)
    assert e.value.line == 7
    assert str(path) in str(e.value)


def test_an_unknown_app_id_is_refused(tmp_path: Path) -> None:
    path = _catalog_with(
        tmp_path, "      - {id: p, method: POST, path: '/x', activity: prompt, source: s, verified: 2026-01-01}\n"
    )
    path.write_text(path.read_text().replace("  chatgpt:\n    endpoints", "  chatgtp:\n    endpoints"))
    with pytest.raises(ConfigError, match="not a provider id"):
        load_web_apps(path)


# --- field paths and decoders: read and write back --------------------------------------------


def test_paths_read_filters_pipes_and_quoted_keys() -> None:
    doc = {
        "messages": [
            {"author": {"role": "system"}, "c": ["s"]},
            {"author": {"role": "user"}, "c": ["u1", {"x": 1}, "u2"]},
        ]
    }
    assert compile_path("messages[?author.role==user].c[*]").strings(doc) == ["u1", "u2"]
    assert compile_path("messages[-1].author.role").first(doc) == "user"
    nested = {"f.req": json.dumps([None, json.dumps([["hi", 0]])])}
    assert compile_path("['f.req'] | json | [1] | json | [0][0]").strings(nested) == ["hi"]
    for bad in ("", "a..b", "a[", "a |", "[?x]"):
        with pytest.raises(PathError):
            compile_path(bad)


def test_a_nested_json_edit_changes_only_the_text() -> None:
    inner = json.dumps([["my key is X", 0, None], ["en"]], separators=(",", ":"))
    outer = json.dumps([None, inner], separators=(",", ":"))
    form_text = "f.req=" + quote_plus(outer, safe="") + "&at=AJvL%3A1&"
    body = decode_body("form", form_text.encode())
    assert isinstance(body, FormBody)
    path = compile_path("['f.req'] | json | [1] | json | [0][0]")
    assert body.encode(path.replace(body.doc, lambda s: s)) == form_text.strip().encode()
    edited = body.encode(path.replace(body.doc, lambda s: s.replace("X", "[SECRET_1]")))
    again = decode_body("form", edited)
    assert path.strings(again.doc) == ["my key is [SECRET_1]"]
    assert edited.endswith(b"&at=AJvL%3A1&")  # the untouched pair is byte for byte what was sent
    expected_inner = json.dumps([["my key is [SECRET_1]", 0, None], ["en"]], separators=(",", ":"))
    assert again.doc["f.req"] == json.dumps([None, expected_inner], separators=(",", ":"))


@pytest.mark.parametrize(("name", "fixture"), fixtures(), ids=[n for n, _ in fixtures()])
def test_every_fixture_round_trips_and_rewrites_only_its_text(name: str, fixture: dict) -> None:
    facts = classify_fixture(fixture)
    if facts is None or facts.body is None:
        return
    _, original = request_of(fixture)
    assert facts.body.encode(facts.body.doc) == original  # nothing edited: the same bytes
    if not facts.texts:
        return
    doc = facts.body.doc
    for path in facts.endpoint.text:
        doc = path.replace(doc, lambda s: "[REDACTED]" if s else s)
    rewritten = facts.body.encode(doc)
    again = decode_body(facts.body.kind, rewritten, fixture["request"]["headers"].get("content-type", ""))
    texts = [t for p in facts.endpoint.text for t in p.strings(again.doc)]
    assert texts and set(texts) == {"[REDACTED]"}
    # Outside the text nothing changed: putting the originals back gives the original bytes.
    originals = iter(facts.texts)
    restored = again.doc
    for path in facts.endpoint.text:
        restored = path.replace(restored, lambda s: next(originals))
    assert again.encode(restored) == original


def test_multipart_text_field_round_trip() -> None:
    boundary = "XyZ"
    raw = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="queryInfo"\r\n\r\n'
        '{"variables":{"query":"hello"}}'
        f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="file0"; filename="a.csv"\r\n'
        f"Content-Type: text/csv\r\n\r\na,b\r\n--{boundary}--\r\n"
    ).encode()
    body = MultipartBody.parse(raw, f"multipart/form-data; boundary={boundary}")
    assert body is not None and body.encode(body.doc) == raw
    assert [(p.filename, p.data) for p in body.files] == [("a.csv", b"a,b")]
    path = compile_path("['queryInfo'] | json | variables.query")
    edited = body.encode(path.replace(body.doc, lambda s: "bye"))
    assert b'{"variables":{"query":"bye"}}' in edited and edited.endswith(b"a,b\r\n--XyZ--\r\n")
    assert MultipartBody.parse(raw[:-9], f"multipart/form-data; boundary={boundary}") is None  # truncated


# --- adversarial: a prompt must not get past counting or DLP ----------------------------------


def _chatgpt(body: bytes, content_type: str = "application/json"):
    return classify(APPS, "chatgpt", "chatgpt.com", "POST", "/backend-api/f/conversation",
                    {"content-type": content_type}, body, ACCOUNTS)  # fmt: skip


def test_a_form_encoded_prompt_to_a_json_endpoint_is_unparsed_and_scanned_whole() -> None:
    facts = _chatgpt(b"messages=my+secret+sk-test&model=auto", "application/x-www-form-urlencoded")
    assert facts is not None and facts.activity == "prompt"
    assert facts.parse_status == "unparsed"
    assert "my secret sk-test" in facts.fallback


def test_text_in_an_unexpected_field_falls_back_to_every_string() -> None:
    body = {"messages": [{"author": {"role": "user"}, "content": {"content_type": "text", "text": "renamed field"}}]}
    facts = _chatgpt(json.dumps(body).encode())
    assert facts is not None and facts.parse_status == "no-text"
    assert "renamed field" in facts.fallback


def test_a_repeated_key_is_scanned_in_every_value() -> None:
    raw = b'{"messages":[{"author":{"role":"user"},"content":{"parts":["safe"],"parts":["hidden"]}}]}'
    facts = _chatgpt(raw)
    assert facts is not None and "hidden" in facts.texts + facts.fallback


def test_text_plain_content_type_does_not_hide_a_json_prompt() -> None:
    raw = json.dumps({"messages": [{"author": {"role": "user"}, "content": {"parts": ["in text/plain"]}}]}).encode()
    facts = _chatgpt(raw, "text/plain;charset=UTF-8")
    assert facts is not None and facts.texts == ["in text/plain"] and facts.parse_status == "ok"


def test_an_undecodable_body_is_unparsed_not_an_error() -> None:
    facts = _chatgpt(b"\xff\xfe\x00garbage")
    assert facts is not None and facts.parse_status == "unparsed" and facts.fallback


# --- shadowgate webapps check FILE.har ----------------------------------------------------------


def _har(tmp_path: Path, names: list[str]) -> Path:
    entries = []
    for name in names:
        fixture = json.loads((FIXTURES / f"{name}.json").read_text())
        req, body = request_of(fixture)
        entry: dict = {
            "request": {
                "method": req["method"], "url": f"https://{req['host']}{req['path']}",
                "headers": [{"name": k, "value": v} for k, v in req["headers"].items()],
            }
        }  # fmt: skip
        if req.get("transport") == "websocket":
            entry["_webSocketMessages"] = [{"type": "send", "opcode": 1, "data": body.decode()}]
        elif body:
            entry["request"]["postData"] = {"mimeType": req["headers"].get("content-type", ""), "text": body.decode()}
        entries.append(entry)
    path = tmp_path / "capture.har"
    path.write_text(json.dumps({"log": {"version": "1.2", "entries": entries}}))
    return path


def test_har_check_prints_endpoints_and_never_text(tmp_path: Path, capsys) -> None:
    from shadowgate.cli import main

    har = _har(
        tmp_path, ["chatgpt-prompt", "chatgpt-telemetry", "gemini-prompt", "copilot-frame-send", "claude-upload"]
    )
    assert main(["webapps", "check", str(har), "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(x["endpoint"], x["activity"], x["parse_status"]) for x in lines] == [
        ("chatgpt.prompt", "prompt", "ok"),
        ("-", "-", "-"),
        ("gemini-app.prompt", "prompt", "ok"),
        ("microsoft-copilot.prompt", "prompt", "ok"),
        ("claude.upload", "upload", "ok"),
    ]
    assert lines[0]["text_chars"] == 39 and lines[0]["files"] == [{"type": "csv", "bytes": 2048}]
    assert main(["webapps", "check", str(har)]) == 0
    text = capsys.readouterr().out
    assert "chatgpt.prompt" in text and "Summarise" not in text and "Translate" not in text


def test_har_check_fails_when_a_prompt_no_longer_parses(tmp_path: Path, capsys) -> None:
    from shadowgate.cli import main

    har = _har(tmp_path, ["claude-prompt"])
    doc = json.loads(har.read_text())
    post = doc["log"]["entries"][0]["request"]["postData"]
    post["text"] = post["text"].replace('"prompt"', '"query"')
    har.write_text(json.dumps(doc))
    assert main(["webapps", "check", str(har), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["parse_status"] == "no-text"
    (tmp_path / "bad.har").write_text("{}")
    assert main(["webapps", "check", str(tmp_path / "bad.har")]) == 2


def test_uploaded_file_text_office_and_sniffing() -> None:
    import io
    import zipfile

    from shadowgate.webapps.classify import FileFacts
    from shadowgate.webapps.content import file_text

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("word/document.xml", "<w:document><w:t>key AKIAZ7Q3M5X2R3W4T5YB</w:t></w:document>")
        z.writestr("word/styles.xml", "<w:styles>not text</w:styles>")
    docx = buf.getvalue()
    text = file_text(FileFacts("memo.docx", len(docx), None, docx), 10_000)
    assert text is not None and "AKIAZ7Q3M5X2R3W4T5YB" in text and "not text" not in text
    renamed = file_text(FileFacts("data.bin", 9, None, b"a,b\n1,2\n"), 10_000)  # sniffed, not trusted by name
    assert renamed == "a,b\n1,2\n"
    assert file_text(FileFacts("photo.png", 8, "image/png", b"\x89PNG\r\n\x1a\n\x00\x00"), 10_000) is None
    assert file_text(FileFacts("big.txt", 100, None, b"x" * 100), 10) == "x" * 10
