"""A minimal LDAP directory on 127.0.0.1 for the proxyauth tests, built on the BER classes ldap3 ships.

It answers exactly what mitmproxy's LDAP validator (via ldap3) sends: simple BindRequests, SearchRequests
(an equality filter on the configured key finds a person; anything else, such as ldap3's root DSE and
schema reads, finds nothing) and UnbindRequests. Every bind is recorded, so tests can see the real
LDAP path ran.
"""

from __future__ import annotations

import socket
import socketserver
import threading

from ldap3.protocol.rfc4511 import BindResponse
from ldap3.protocol.rfc4511 import LDAPMessage
from ldap3.protocol.rfc4511 import MessageID
from ldap3.protocol.rfc4511 import PartialAttributeList
from ldap3.protocol.rfc4511 import ProtocolOp
from ldap3.protocol.rfc4511 import SearchResultDone
from ldap3.protocol.rfc4511 import SearchResultEntry
from ldap3.strategy.base import BaseStrategy
from pyasn1.codec.ber import decoder
from pyasn1.codec.ber import encoder

SUCCESS, INVALID_CREDENTIALS = 0, 49


class FakeLdap:
    """passwords: DN -> password (the service account and the people); people: filter value -> DN.

    Use it as a context manager: it serves on self.port inside the `with`."""

    def __init__(self, passwords: dict[str, str], people: dict[str, str], key: str = "uid") -> None:
        self.passwords, self.people, self.key = passwords, people, key
        self.binds: list[tuple[str, bool]] = []  # (dn, accepted), in order
        self.searches: list[str] = []  # the filter values looked up with `key`
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]

    def __enter__(self) -> FakeLdap:
        threading.Thread(target=self._server.serve_forever, name="fake-ldap", daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _serve(self, sock: socket.socket) -> None:
        buffer = b""
        while True:
            size = BaseStrategy.compute_ldap_message_size(buffer)
            if size == -1 or len(buffer) < size:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                buffer += chunk
                continue
            raw, buffer = buffer[:size], buffer[size:]
            message, _ = decoder.decode(raw, asn1Spec=LDAPMessage())
            message_id = int(message["messageID"])
            op = message["protocolOp"]
            kind = op.getName()
            if kind == "unbindRequest":
                return
            # Anything else raises: the handler thread ends and ldap3 sees the connection close.
            for name, response in self._answer(kind, op.getComponent()):
                reply = LDAPMessage()
                reply["messageID"] = MessageID(message_id)
                reply["protocolOp"] = ProtocolOp().setComponentByName(name, response)
                sock.sendall(encoder.encode(reply))

    def _answer(self, kind: str, request) -> list[tuple[str, object]]:
        if kind == "bindRequest":
            dn = str(request["name"])
            auth = request["authentication"]
            ok = auth.getName() == "simple" and self.passwords.get(dn) == bytes(auth.getComponent()).decode()
            self.binds.append((dn, ok))
            return [("bindResponse", _result(BindResponse(), SUCCESS if ok else INVALID_CREDENTIALS))]
        if kind == "searchRequest":
            found = []
            ldap_filter = request["filter"]
            if ldap_filter.getName() == "equalityMatch":
                match = ldap_filter.getComponent()
                if str(match["attributeDesc"]).lower() == self.key:
                    value = bytes(match["assertionValue"]).decode()
                    self.searches.append(value)
                    if value in self.people:
                        entry = SearchResultEntry()
                        entry["object"] = self.people[value]
                        entry["attributes"] = PartialAttributeList()
                        found.append(("searchResEntry", entry))
            return [*found, ("searchResDone", _result(SearchResultDone(), SUCCESS))]
        raise NotImplementedError(f"fake LDAP server: unsupported operation {kind}")


def _result(result, code: int):
    result["resultCode"] = code
    result["matchedDN"] = ""
    result["diagnosticMessage"] = ""
    return result
