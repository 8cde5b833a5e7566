"""Payloads that declare themselves text (wireformats/scope.py declared_text): read as text
whatever their bytes, in every shape that carries one."""

from __future__ import annotations

import base64

import pytest

from shadowgate.wireformats.scope import declared_payload
from shadowgate.wireformats.scope import is_text_media
from shadowgate.wireformats.scope import request_pieces

SECRET = "ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R9s"
HIDDEN = b"\x00\x01" * 30 + f"key {SECRET}".encode()  # binary by its bytes, text by its type


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize(
    "body",
    [
        {"messages": [{"role": "user", "content": [{"document": {"format": "txt", "name": "n",
                                                                "source": {"bytes": _b64(HIDDEN)}}}]}]},
        {"contents": [{"parts": [{"inline_data": {"mime_type": "application/json", "data": _b64(HIDDEN)}}]}]},
        {"realtimeInput": {"mediaChunks": [{"mimeType": "text/markdown; charset=utf-8", "data": _b64(HIDDEN)}]}},
        {"contents": [{"uri": "file:///n.txt", "mimeType": "text/plain", "blob": _b64(HIDDEN)}]},
    ],
    ids=["bedrock-document", "gemini-snake-case", "gemini-live-chunk", "mcp-blob"],
)  # fmt: skip
def test_a_declared_text_payload_is_one_piece_of_text(body):
    texts = [t for p in request_pieces(body) for t in (p.text, *p.also)]
    assert any(SECRET in t for t in texts)


def test_binary_media_and_text_sources_are_left_as_they_are():
    png = {"inlineData": {"mimeType": "image/png", "data": _b64(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20)}}
    assert not any(len(p.text) > 1000 for p in request_pieces(png))
    text_source = {"type": "text", "media_type": "text/plain", "data": "plain words, not base64"}
    assert "plain words, not base64" in [p.text for p in request_pieces({"source": text_source})]


def test_redacted_text_goes_back_in_its_charset_and_form():
    text, encode, _ = declared_payload("data:text/plain;charset=utf-16;base64," + _b64("héllo".encode("utf-16")), "")
    assert text == "héllo" and base64.b64decode(encode("h").split(",", 1)[1]).decode("utf-16") == "h"
    text, encode, _ = declared_payload(_b64(b"caf\xe9 " + SECRET.encode()), "text/plain")
    assert text.endswith(SECRET) and base64.b64decode(encode("caf\xe9 X")) == b"caf\xe9 X"  # latin-1 kept
    text, encode, _ = declared_payload("\n".join(["a2V5IGdocF8x", "YTJCM2M0RDVl"]), "text/plain")
    assert text == "key ghp_1a2B3c4D5e"  # MIME line breaks in the base64
    text, _, also = declared_payload(_b64(f"key {SECRET}".encode("utf-16-le")), "text/plain")
    assert SECRET not in text and also == (f"key {SECRET}",)  # UTF-16 without a BOM: read both ways


def test_words_are_text_as_they_stand_and_stray_characters_are_skipped_as_lenient_decoders_do():
    stray = _b64(f"key {SECRET}".encode())
    assert declared_payload(stray[:8] + "!" + stray[8:], "text/plain")[2] == (f"key {SECRET}",)
    assert declared_payload("plain words, as they stand", "text/plain")[:3:2] == ("plain words, as they stand", ())
    assert declared_payload("a2V5IGdocF8x", "text/plain")[0] == "key ghp_1"  # padding left off


def test_text_media_types():
    assert all(map(is_text_media, ["text/plain", "TEXT/CSV; charset=latin-1", "application/json", "application/ld+json",
                                   "application/xml", "image/svg+xml", "application/x-yaml", "message/rfc822"]))  # fmt: skip
    assert not any(map(is_text_media, ["image/png", "application/pdf", "application/octet-stream", "audio/wav", ""]))
