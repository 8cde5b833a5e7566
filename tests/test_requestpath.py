"""config/requestpath.py: the readings of a request path the catalog matches routes under."""

from __future__ import annotations

import pytest

from shadowgate.config.catalog import load_catalog
from shadowgate.config.requestpath import path_readings
from shadowgate.config.requestpath import request_methods
from shadowgate.wireformats import PARSERS


@pytest.mark.parametrize(
    ("target", "readings"),
    [
        ("/v1/chat/completions?x=1", ("/v1/chat/completions",)),
        ("/v1/chat/%63ompletions", ("/v1/chat/completions",)),
        ("/v1/chat/%2563ompletions", ("/v1/chat/completions",)),  # decoded again, as a second server would
        ("/v1/chat%2fcompletions", ("/v1/chat%2Fcompletions", "/v1/chat/completions")),
        ("/v1/chat%5Ccompletions", ("/v1/chat%2Fcompletions", "/v1/chat/completions")),
        ("/v1\\chat\\completions", ("/v1/chat/completions",)),
        ("/v1/chat/completions/", ("/v1/chat/completions",)),
        ("/v1/chat;a=1/completions;b=2", ("/v1/chat/completions",)),
        ("//v1//chat///completions", ("/v1/chat/completions",)),
        ("/v1/./x/../chat/completions", ("/v1/chat/completions",)),
        ("/../../v1/chat/completions", ("/v1/chat/completions",)),
        ("/v1/chat/completions/x/%2e%2E", ("/v1/chat/completions",)),
        ("/v1/chat/completions#frag", ("/v1/chat/completions",)),
        ("/caf%C3%A9", ("/caf%C3%A9",)),  # bytes above ASCII stay escaped: no route needs them
        ("/", ("/",)),
    ],
)
def test_path_readings(target, readings):
    assert path_readings(target) == readings


def test_override_headers_add_the_methods_they_ask_for():
    assert request_methods("get", {"x-http-method-override": " post "}) == ("GET", "POST")
    assert request_methods("POST", {"x-method-override": "POST", "x-http-method": "PUT"}) == ("POST", "PUT")
    assert request_methods("POST", {}) == ("POST",)


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(known_parsers=PARSERS)


@pytest.mark.parametrize(
    "path",
    ["/V1/CHAT/COMPLETIONS", "/v1/chat/completions;x", "/v1%2Fchat%2Fcompletions", "/v1/chat/completions/"],
)
def test_the_catalog_routes_every_reading(catalog, path):
    route = catalog.route(catalog.match_host("api.openai.com"), "post", path)
    assert route is not None and route.wire_format == "openai-chat"


def test_an_escaped_slash_inside_a_model_id_keeps_its_segment(catalog):
    arn = "arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic.claude-3-haiku"
    bedrock = catalog.match_host("bedrock-runtime.us-east-1.amazonaws.com")
    route = catalog.route(bedrock, "POST", f"/model/{arn}/converse")
    assert route is not None and route.operation == "chat"
    assert (
        route.model_from_path
        == "arn:aws:bedrock:us-east-1:123456789012:inference-profile%2Fus.anthropic.claude-3-haiku"
    )


def test_a_gemini_path_in_another_case_keeps_its_model(catalog):
    gemini = catalog.match_host("generativelanguage.googleapis.com")
    route = catalog.route(gemini, "POST", "/V1BETA/models/Gemini-2.0-Flash:GENERATECONTENT")
    assert route is not None and route.model_from_path == "Gemini-2.0-Flash"
