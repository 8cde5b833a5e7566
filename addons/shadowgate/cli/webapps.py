"""`shadowgate webapps check FILE.har`: a browser capture through the web-app classification.

Export a HAR from the browser's developer tools while using a chat app (scrub cookies and tokens
first: the command reads no cookie, but the file holds them), then:

    shadowgate webapps check chatgpt.har [--json] [--all]

Per request to a catalogued chat app (and per client WebSocket frame in Chromium's
`_webSocketMessages`): the endpoint, the activity, how many text fields and characters were
found, the files, the model, the account kind and the parse status. Never the text itself.
A non-GET request to an app that matches no endpoint is listed as `-`: when the app's prompt
shows up there, its format changed. The exit status is 0, or 1 when a request to a catalogued
app was a prompt endpoint that did not parse (`no-text`, `unparsed`, `error`), 2 for a bad file.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shadowgate.cli.catalog_options import add_catalog_arguments
from shadowgate.cli.catalog_options import catalog_from_arguments
from shadowgate.config.policy import load_policy
from shadowgate.config.policy_accounts import AccountsPolicy
from shadowgate.config.yamlfile import ConfigError
from shadowgate.webapps.catalog import load_web_apps
from shadowgate.webapps.classify import OK
from shadowgate.webapps.classify import WebFacts
from shadowgate.webapps.classify import classify


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="webapps_command", required=True)
    check = sub.add_parser("check", help="classify the requests of a HAR capture as the proxy would")
    check.add_argument("har", help="a HAR file exported from the browser")
    add_catalog_arguments(check, "the catalog (its web_apps: section too)")
    check.add_argument("--policy", help="a policy file, for its accounts: section (the account kinds)")
    check.add_argument("--json", action="store_true", help="one JSON object per request")
    check.add_argument("--all", action="store_true", help="also list GET requests that match no endpoint")


def run(args: argparse.Namespace) -> int:
    try:
        catalog = catalog_from_arguments(args)
        apps = load_web_apps(args.providers, provider_ids=catalog.providers)
        accounts = load_policy(args.policy).accounts if args.policy else AccountsPolicy()
    except ConfigError as e:
        print(f"shadowgate webapps: {e}", file=sys.stderr)
        return 2
    try:
        entries = json.loads(Path(args.har).read_text(encoding="utf-8"))["log"]["entries"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"shadowgate webapps: {args.har}: not a HAR file ({e})", file=sys.stderr)
        return 2
    drifted = False
    out = sys.stdout
    for entry in entries:
        for line in _check_entry(entry, catalog, apps, accounts, args.all):
            drifted = drifted or (line["activity"] == "prompt" and line["parse_status"] != OK)
            out.write((json.dumps(line) if args.json else _text(line)) + "\n")
    out.flush()
    return 1 if drifted else 0


def _check_entry(entry: dict, catalog: Any, apps: Any, accounts: AccountsPolicy, show_all: bool) -> list[dict]:
    request = entry.get("request") or {}
    url = urlsplit(str(request.get("url", "")))
    host = (url.hostname or "").lower()
    method = str(request.get("method", "GET")).upper()
    path = url.path + (f"?{url.query}" if url.query else "")
    headers = {str(h.get("name", "")).lower(): str(h.get("value", "")) for h in request.get("headers") or []}
    provider = catalog.match_host(host)
    pid = provider.id if provider else None
    if apps.app(pid) is None and not apps.on_foreign_host(host):
        return []
    lines = []
    frames = [m for m in entry.get("_webSocketMessages") or [] if m.get("type") == "send"]
    if frames:
        for frame in frames:
            data = str(frame.get("data", "")).encode()
            facts = classify(apps, pid, host, "GET", path, headers, data, accounts, transport="websocket")
            if facts is not None or show_all:
                lines.append(_line("WS", host, url.path, facts))
        return lines
    facts = classify(apps, pid, host, method, path, headers, _body(request), accounts)
    if facts is not None or method != "GET" or show_all:
        lines.append(_line(method, host, url.path, facts))
    return lines


def _body(request: dict) -> bytes | None:
    post = request.get("postData")
    if not post:
        return None
    text = post.get("text")
    if text is None and post.get("params"):  # a form HAR may list fields instead of the text
        from urllib.parse import urlencode

        return urlencode([(p.get("name", ""), p.get("value", "")) for p in post["params"]]).encode()
    if post.get("encoding") == "base64":
        return base64.b64decode(text or "")
    return str(text or "").encode()


def _line(method: str, host: str, path: str, facts: WebFacts | None) -> dict:
    if facts is None:
        return {"method": method, "host": host, "path": path, "endpoint": "-", "activity": "-", "parse_status": "-"}
    return {
        "method": method,
        "host": host,
        "path": path,
        "endpoint": facts.endpoint.id,
        "activity": facts.activity,
        "text_fields": len(facts.texts),
        "text_chars": facts.text_chars,
        "fallback_strings": len(facts.fallback),
        "files": [{"type": f.extension, "bytes": f.size} for f in facts.files],
        "model": facts.model,
        "conversation": facts.conversation is not None,
        "account_kind": facts.account_kind,
        "parse_status": facts.parse_status,
    }


def _text(line: dict) -> str:
    head = f"{line['method']:<6} {line['host']}{line['path'][:80]}"
    if line["endpoint"] == "-":
        return f"{head}\n       -  (no endpoint: not counted)"
    files = ", ".join(f"{f['type'] or '?'} {f['bytes'] if f['bytes'] is not None else '?'} B" for f in line["files"])
    return (
        f"{head}\n       {line['endpoint']}  activity={line['activity']}  text={line['text_fields']} fields/"
        f"{line['text_chars']} chars  files=[{files}]  model={line['model'] or '-'}  "
        f"conversation={'yes' if line['conversation'] else 'no'}  account={line['account_kind']}  "
        f"parse={line['parse_status']}"
    )
