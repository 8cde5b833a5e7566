"""The console's accounts and sessions: a password file of scrypt hashes, server-side sessions, CSRF tokens.

The password file has one account a line, `name:scrypt$N$r$p$salt$hash` (salt and hash in
base64), written by `shadowgate serve --passwd NAME` with mode 0600. It is read again at every
login, so an added or removed account counts without a restart. Every account is read-only:
the console has nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# scrypt at N=2**14, r=8, p=1 (the parameters RFC 7914 and OWASP name for interactive logins):
# 16 MiB and tens of milliseconds a guess.
SCRYPT_N, SCRYPT_R, SCRYPT_P, KEY_LEN = 2**14, 8, 1, 32
SESSION_SECONDS = 8 * 3600
MAX_FAILURES, FAILURE_WINDOW = 10, 300.0  # per client address: then 429 until the window passes


def hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    key = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(key)}"


def verify_password(password: str, encoded: str) -> bool:
    try:
        scheme, n, r, p, salt, key = encoded.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(key, validate=True)
        got = _scrypt(password, base64.b64decode(salt, validate=True), int(n), int(r), int(p))
    except ValueError:
        return False  # a damaged line never logs anyone in
    return hmac.compare_digest(got, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=KEY_LEN)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def read_passwords(path: Path) -> dict[str, str]:
    """{name: encoded hash}; blank lines and # comments are skipped."""
    accounts: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and ":" in line:
            name, _, encoded = line.partition(":")
            accounts[name] = encoded
    return accounts


def set_password(path: Path, name: str, password: str) -> None:
    """Add the account or replace its password; the file is written whole, readable by its owner only."""
    if not name or ":" in name or any(c.isspace() for c in name):
        raise ValueError(f"not an account name: {name!r} (no colon, no spaces)")
    if len(password) < 8:
        raise ValueError("the password needs at least 8 characters")
    accounts = read_passwords(path) if path.exists() else {}
    accounts[name] = hash_password(password)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.writelines(f"{n}:{h}\n" for n, h in accounts.items())
    os.replace(tmp, path)


# Compared against when the name is unknown, so a wrong name costs the same time as a wrong password.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


@dataclass(slots=True)
class Session:
    user: str
    csrf: str  # for the POSTs a logged-in user makes (log out)
    expires: float


class Authenticator:
    """Checks logins against the password file and keeps the sessions in memory (a restart logs everyone out)."""

    def __init__(self, password_file: Path) -> None:
        self.password_file = password_file
        self.secret = secrets.token_bytes(32)  # signs the login form's CSRF token
        self._sessions: dict[str, Session] = {}
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def login(self, name: str, password: str) -> str | None:
        """A new session token for the right name and password, else None."""
        encoded = read_passwords(self.password_file).get(name)
        ok = verify_password(password, encoded or _DUMMY_HASH) and encoded is not None
        if not ok:
            return None
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._sessions[token] = Session(name, secrets.token_urlsafe(32), time.monotonic() + SESSION_SECONDS)
        return token

    def session(self, token: str | None) -> Session | None:
        if not token:
            return None
        with self._lock:
            found = self._sessions.get(token)
            if found is not None and found.expires < time.monotonic():
                del self._sessions[token]
                return None
        return found

    def logout(self, token: str) -> None:
        with self._lock:
            self._sessions.pop(token, None)

    # --- the login form's CSRF token: a random value and its HMAC, in a cookie and in the form --------

    def new_login_csrf(self) -> str:
        nonce = secrets.token_urlsafe(24)
        return f"{nonce}.{self._sign(nonce)}"

    def check_login_csrf(self, cookie: str | None, form: str | None) -> bool:
        if not cookie or not form or not hmac.compare_digest(cookie.encode(), form.encode()):
            return False
        nonce, _, mac = form.partition(".")
        return hmac.compare_digest(mac.encode(), self._sign(nonce).encode())

    def _sign(self, nonce: str) -> str:
        return hmac.new(self.secret, nonce.encode(), hashlib.sha256).hexdigest()

    # --- failed logins, per client address --------------------------------------------------------------

    def too_many_failures(self, client: str) -> bool:
        now = time.monotonic()
        with self._lock:
            recent = [t for t in self._failures.get(client, []) if now - t < FAILURE_WINDOW]
            self._failures[client] = recent
            return len(recent) >= MAX_FAILURES

    def failed(self, client: str) -> None:
        with self._lock:
            self._failures.setdefault(client, []).append(time.monotonic())
