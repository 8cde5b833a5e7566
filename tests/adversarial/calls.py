"""An API call through the proxy, marked so a test can tell whether it reached the upstream."""

from __future__ import annotations

from tests.adversarial.wire import marker

CHAT_URL = "https://api.openai.com/v1/chat/completions"


def post_marked(
    proxy,
    user: str,
    body: bytes,
    url: str = CHAT_URL,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
):
    """POST a body (JSON unless told) as `user` with a fresh x-attack mark: (httpx answer, the mark)."""
    mark = marker()
    sent = {"content-type": content_type, "authorization": "Bearer sk-test", "x-attack": mark, **(headers or {})}
    with proxy.client(user) as client:
        answer = client.post(url, content=body, headers=sent)
    return answer, mark


def reached(upstream, mark: str) -> bool:
    """Whether the request with this mark reached the fake upstream."""
    return any(s.headers.get("x-attack") == mark for s in upstream.seen)


def fake_answer(upstream, path: str, answer: dict, host: str = "api.openai.com") -> str:
    """A fake-upstream case that answers POST `path` on `host` with this JSON; its name, to send
    as the x-fake-case header (pop it from upstream.cases when done)."""
    name = f"case-{marker()[:10]}"
    upstream.cases[name] = {"name": name, "host": host,
                            "request": {"method": "POST", "path": path, "query": "", "headers": {}, "body": None},
                            "response": {"status": 200, "headers": {"content-type": "application/json"},
                                         "body_text": None, "body_base64": None, "body_json": answer}}  # fmt: skip
    return name
