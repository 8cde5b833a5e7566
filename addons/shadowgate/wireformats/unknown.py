"""Facts of a request to an endpoint no wire format describes, on a host that speaks an AI API.

Such a request is still recorded (and DLP-scanned, see scope.py): with its model when the body
names one, as most AI APIs do at the top level, and an empty operation, so the row says that the
proxy did not know the endpoint rather than guessing.
"""

from __future__ import annotations

from typing import Any

from .base import RequestFacts
from .common import dig
from .common import nonempty_str
from .common import stream_flag


def unknown_endpoint_facts(body: Any) -> RequestFacts:
    return RequestFacts(
        operation="",
        model=nonempty_str(dig(body, "model")),
        streaming=stream_flag(dig(body, "stream"), False),
    )
