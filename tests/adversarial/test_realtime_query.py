"""Class 3: a realtime URL cannot name a blocked model where the proxy does not look (red-team F11).

`?model=allowed&model=blocked` was judged by the first value while a last-wins server (Starlette)
runs the second; `?MODEL=`, `?model[]=` and `;model=` were no model at all. Every model the query
may name, read as any of those servers reads it, is judged, and the strictest decision holds.
"""

from __future__ import annotations

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.adversarial.test_realtime import ws_policy  # noqa: F401 - fixtures shared with that module
from tests.adversarial.test_realtime import ws_proxy  # noqa: F401
from tests.adversarial.test_realtime import ws_upstream  # noqa: F401
from tests.support.wsclient import ws_ssl_context

POLICY = "rules:\n  - {id: no-big-rt, match: {provider: openai, model: gpt-realtime}, action: block}\n"
QUERIES = {
    "dup-last": "model=gpt-realtime-mini&model=gpt-realtime",
    "dup-first": "model=gpt-realtime&model=gpt-realtime-mini",
    "upper-key": "MODEL=gpt-realtime",
    "array-key": "model[]=gpt-realtime-mini&model[]=gpt-realtime",
    "semicolon": "model=gpt-realtime-mini;model=gpt-realtime",
    "escaped-key": "model=gpt-realtime-mini&mod%65l=gpt-realtime",
    "azure-key": "model=gpt-realtime-mini&deployment=gpt-realtime",
    "upper-value": "model=GPT-Realtime",
}


@pytest.mark.parametrize("query", list(QUERIES.values()), ids=list(QUERIES))
def test_every_model_the_url_names_is_judged(ws_policy, ws_upstream, query):  # noqa: F811
    proxy = ws_policy(POLICY)
    user = f"rtq-{list(QUERIES.values()).index(query)}"
    before = len(ws_upstream.upgrades)
    with pytest.raises(InvalidStatus) as refused:
        connect(f"wss://api.openai.com/v1/realtime?{query}", proxy=proxy.url(user), ssl=ws_ssl_context(proxy))
    assert refused.value.response.status_code == 403
    assert b"no-big-rt" in refused.value.response.body
    assert len(ws_upstream.upgrades) == before
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert (row["decision"], row["rule_id"]) == ("block", "no-big-rt")
    assert row["model"].casefold() == "gpt-realtime"


def test_an_allowed_model_named_twice_still_connects(ws_policy, ws_upstream):  # noqa: F811
    proxy = ws_policy(POLICY)
    before = len(ws_upstream.upgrades)
    query = "model=gpt-realtime-mini&MODEL=gpt-realtime-mini"
    with connect(f"wss://api.openai.com/v1/realtime?{query}", proxy=proxy.url("rtq-ok"), ssl=ws_ssl_context(proxy)):
        pass
    assert len(ws_upstream.upgrades) == before + 1
    [row] = proxy.rows("user_name = 'rtq-ok'", expect=1)
    assert (row["decision"], row["model"]) == ("allow", "gpt-realtime-mini")
