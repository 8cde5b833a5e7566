"""Approval of risky MCP tool calls (OWASP LLM08): hold the call, ask an approver, go on or refuse.

A held call waits in its request hook (an `await`, never blocking the event loop) until a decision
or the timeout. The approver gets a signed link through the alert destinations (webhook, e-mail);
the link opens a page the proxy serves itself (stages/approval.py) with approve and deny buttons.

Decisions live in a folder every instance shares (`<shadowgate_db>.approvals/`, next to the
segments, which instances behind one balancer already share): the held call is published there as
`<id>.call.json`, and a decision is the file `<id>.decision.json`, created with O_CREAT|O_EXCL so
the first decision wins, wherever it was made, and a link cannot be used twice. The instance
holding the call resolves it at once when the click lands on it and otherwise reads the folder
every POLL_SECONDS. The timeout and a client that hangs up are decisions too, taken the same way,
so a click racing the timeout either wins (and the call goes on) or is told it came too late.

The folder is the proxy's own and is kept 0700, its files 0600: a held call's arguments may hold
secrets, and whoever can create a file there decides calls. A folder found open to others is
tightened; one that cannot be (another owner) holds nothing, and calls that need approval are
refused. Approvers are told on threads of their own (Deliveries), so a webhook or mail server that
hangs never delays the DLP scans and file reads on the default pool, nor they it.

People are compared in one form (config/policy_approval.canonical_identity): the requester, the
approver and the configured approvers, so `ALICE` is alice and cannot approve alice's call.

Links are HMAC-signed (a key derived from the fingerprint key, as the coach consent, so any
instance holding that key verifies them) over the call's id and a digest of what it does (host,
tool, arguments as they will be sent, the requester), and expire with the hold.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import hmac
import json
import logging
import math
import os
import queue
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from shadowgate.config.policy_alerts import AlertsPolicy
from shadowgate.config.policy_approval import ApprovalPolicy
from shadowgate.config.policy_approval import canonical_identity
from shadowgate.enforce.coach import ConsentTokens
from shadowgate.events.deliver import DeliveryError
from shadowgate.events.deliver import SmtpServer
from shadowgate.events.deliver import post_json
from shadowgate.events.deliver import secret_from
from shadowgate.events.deliver import send_mail
from shadowgate.events.deliver import webhook_payload
from shadowgate.events.schema import HOSTNAME
from shadowgate.mcp.session import McpCall

log = logging.getLogger(__name__)

APPROVED, DENIED, TIMEOUT, ABANDONED = "approved", "denied", "approval_timeout", "abandoned"
WOULD_APPROVE = "would_approve"
DECISIONS = (APPROVED, DENIED, TIMEOUT, ABANDONED)
TOKEN_KIND = "mcp_approval"
LINK_PATH = "/mcp/approval/"
POLL_SECONDS = 0.5
KEEP_SECONDS = 2 * 86400  # published calls and decisions older than this are swept
PREVIEW_CHARS = 1000  # of the arguments, in the approvers' message
PAGE_CHARS = 64 * 1024  # on the approval page; a call whose arguments are longer cannot be approved
_KEY_LABEL = b"shadowgate mcp approval v1"
INSTANCE = f"{HOSTNAME}:{os.getpid()}"
FOLDER_MODE, FILE_MODE = 0o700, 0o600
NOTIFY_WORKERS = 4  # approval notifications delivered at once (each may wait TIMEOUT per destination)
NOTIFY_QUEUE = 256  # waiting beyond the workers; more: the call is refused (nobody could be told)


def approval_tokens(secret: bytes) -> ConsentTokens:
    """The coach's token format under a key of its own: a consent token is never an approval."""
    return ConsentTokens(hmac.new(secret, _KEY_LABEL, hashlib.sha256).digest())


def call_digest(host: str, tool: str | None, arguments: Any, requester: str) -> str:
    """What a link approves: this host, tool, these arguments (as sent), for this person."""
    text = json.dumps([host, tool, arguments, requester], sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Decided:
    decision: str  # one of DECISIONS
    approver: str | None = None
    at: float = 0.0
    first: bool = True  # False: another decision was there before this one


class ApprovalStore:
    """The shared folder: published calls and their decisions. Blocking: call from a thread."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._swept = 0.0

    def ready(self) -> None:
        """The folder exists, 0700 and the proxy's; raises OSError when it cannot be made so."""
        self.folder.mkdir(mode=FOLDER_MODE, parents=True, exist_ok=True)
        mode = stat.S_IMODE(os.stat(self.folder).st_mode)
        if mode & 0o077:
            # Tightened rather than warned about: anyone who may create a file here can approve
            # any held call, and anyone who may read here sees held calls' arguments.
            try:
                os.chmod(self.folder, FOLDER_MODE)
            except OSError as e:
                raise OSError(f"the approvals folder {self.folder} is open to others ({mode:o}) "
                              f"and cannot be made 0700: {e}") from None  # fmt: skip
            log.warning("shadowgate: the approvals folder %s was open to others (%o): made 0700", self.folder, mode)

    def _path(self, call_id: str, kind: str) -> Path:
        if not call_id.isalnum():  # ids are uuid4 hex; never a path outside the folder
            raise ValueError("not a call id")
        return self.folder / f"{call_id}.{kind}.json"

    def publish(self, call_id: str, summary: dict) -> None:
        self.ready()
        path = self._path(call_id, "call")
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, FILE_MODE)
        os.fchmod(fd, FILE_MODE)  # a leftover temporary file keeps its mode through O_TRUNC
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(summary, f)
        os.replace(tmp, path)
        self.sweep()

    def summary(self, call_id: str) -> dict | None:
        try:
            value = json.loads(self._path(call_id, "call").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def decide(self, call_id: str, decision: str, approver: str | None) -> Decided:
        """Record a decision unless there is one already; returns the one in force."""
        self.ready()
        path = self._path(call_id, "decision")
        mine = Decided(decision, approver, time.time())
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
        except FileExistsError:
            return self._existing(call_id)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"decision": decision, "approver": approver, "at": mine.at, "instance": INSTANCE}, f)
        return mine

    def _existing(self, call_id: str) -> Decided:
        # The writer may not have finished its few bytes yet: read again a few times.
        for _ in range(20):
            found = self.decision(call_id)
            if found is not None:
                return Decided(found.decision, found.approver, found.at, first=False)
            time.sleep(0.01)
        return Decided(DENIED, None, time.time(), first=False)  # unreadable: never an approval

    def decision(self, call_id: str) -> Decided | None:
        try:
            value = json.loads(self._path(call_id, "decision").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(value, dict) or value.get("decision") not in DECISIONS:
            return None
        approver = value.get("approver")
        return Decided(value["decision"], approver if isinstance(approver, str) else None, float(value.get("at") or 0))

    def sweep(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if now - self._swept < 3600:
            return
        self._swept = now
        try:
            entries = list(os.scandir(self.folder))
        except OSError:
            return
        for entry in entries:
            try:
                if now - entry.stat().st_mtime > KEEP_SECONDS:
                    os.unlink(entry.path)
            except OSError:
                pass


@dataclass(slots=True)
class Held:
    call: McpCall
    client: Any  # the mitmproxy Client whose request waits
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    local: Decided | None = None  # a decision made on this instance, or the client leaving


class Deliveries:
    """The approval notifications' own few threads and bounded queue.

    On the default pool (asyncio.to_thread) a webhook that hangs held one of its few threads
    (min(32, CPUs + 4)) for TIMEOUT per destination, and a burst of held calls left DLP scans of
    other people's prompts queued behind them. Daemon threads: a delivery that hangs does not
    hold up the proxy's exit either."""

    def __init__(self, workers: int = NOTIFY_WORKERS, size: int = NOTIFY_QUEUE) -> None:
        self._queue: queue.Queue[tuple[concurrent.futures.Future, Callable[..., Any], tuple]] = queue.Queue(size)
        self._workers = workers
        self._threads: list[threading.Thread] = []

    def run(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future:
        """fn(*args) on one of the threads; raises queue.Full when too many wait already."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put_nowait((future, fn, args))
        self._threads = [t for t in self._threads if t.is_alive()]
        while len(self._threads) < self._workers:
            thread = threading.Thread(target=self._work, name="shadowgate-approval-notify", daemon=True)
            thread.start()
            self._threads.append(thread)
        return asyncio.wrap_future(future)

    def _work(self) -> None:
        while True:
            future, fn, args = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as e:  # handed to the waiting call, which refuses it
                future.set_exception(e)


@dataclass(frozen=True, slots=True)
class HeldCall:
    """What the alerts learn of a call put on hold: who, where, which tool and why, never its arguments."""

    request_id: str
    requester: str
    host: str
    server: str | None
    tool: str | None
    reason: str


@dataclass(slots=True)
class HoldRequest:
    """What the stage asks: hold this call (its arguments as they will be sent)."""

    call: McpCall
    arguments: Any
    reason: str
    shown: str | None  # the arguments as the page shows them (as stored: after DLP), up to PAGE_CHARS + 1

    @property
    def complete(self) -> bool:
        """Whether the page shows every character: an approver never approves what they cannot see."""
        return self.shown is None or len(self.shown) <= PAGE_CHARS

    @property
    def preview(self) -> str | None:
        shown = self.shown
        if shown is None or len(shown) <= PREVIEW_CHARS:
            return shown
        return f"{shown[:PREVIEW_CHARS]}... (more on the approval page)"


class Approvals:
    """The calls this instance holds, and the waiting, notifying and deciding around them."""

    def __init__(self) -> None:
        self.held: dict[str, Held] = {}
        self.store: ApprovalStore | None = None
        self.secret = b""
        self.on_hold: list[Callable[[HeldCall], None]] = []  # told on the event loop: O(1) each
        self.deliveries = Deliveries()
        self.stopping = False  # the proxy stops: no call is held any more
        self.recorded: set[str] = set()  # calls whose row was written when the proxy stopped

    def configure(self, folder: Path, secret: bytes) -> None:
        self.store = ApprovalStore(folder)
        self.secret = secret

    @property
    def tokens(self) -> ConsentTokens:
        return approval_tokens(self.secret)

    def link(self, policy: ApprovalPolicy, call_id: str, digest: str, expires: int) -> str:
        token = self.tokens.sign(TOKEN_KIND, [call_id, digest], expires)
        return f"http://{policy.link_host}{LINK_PATH}{token}"

    def busy(self, policy: ApprovalPolicy, requester: str) -> str | None:
        """Why another call cannot be held now (a flood), or None."""
        if len(self.held) >= policy.max_held:
            return f"{len(self.held)} calls are already waiting for approval on this proxy"
        mine = sum(1 for h in self.held.values() if requester_of(h.call) == requester)
        if mine >= policy.max_held_per_user:
            return f"{mine} of your calls are already waiting for approval"
        return None

    async def hold(
        self, request: HoldRequest, client: Any, policy: ApprovalPolicy, alerts: AlertsPolicy | None
    ) -> Decided:
        """Wait for the decision on one call: an approver's, the timeout's, or the client leaving."""
        store = self.store
        call = request.call
        if store is None:
            return Decided(DENIED, None, time.time())
        call_id = call.request_id
        requester = requester_of(call)
        if requester is None or self.stopping:  # the stage refuses these before; never held unchecked
            return Decided(DENIED, None, time.time())
        deadline = time.time() + policy.timeout
        expires = math.ceil(deadline)  # the link's; the hold ends at the deadline itself
        digest = call_digest(call.host, call.tool_name, request.arguments, requester)
        summary = {
            "id": call_id,
            "digest": digest,
            "host": call.host,
            "server": call.server.id if call.server is not None else None,
            "tool": call.tool_name,
            "user": call.person.user,
            "group": call.person.group,
            "client_ip": call.client_ip,
            "requester": requester,
            "reason": request.reason,
            "arguments": request.preview,
            "shown": request.shown[:PAGE_CHARS] if request.shown is not None else None,
            "complete": request.complete,
            "expires": expires,
            "instance": INSTANCE,
        }
        held = Held(call, client)
        self.held[call_id] = held
        try:
            await asyncio.to_thread(store.publish, call_id, summary)
            server = call.server.id if call.server is not None else None
            self._tell(HeldCall(call_id, requester, call.host, server, call.tool_name, request.reason))
            link = self.link(policy, call_id, digest, expires)
            try:
                errors = await self.deliveries.run(notify, policy, alerts, summary, link)
            except queue.Full:  # nobody can be told: as if every destination had failed
                errors = [f"{name}: {NOTIFY_QUEUE} approval notifications wait already" for name in policy.notify]
            if len(errors) == len(policy.notify):
                log.error("shadowgate: no approver could be told of MCP call %s: %s", call_id, "; ".join(errors))
                return await asyncio.to_thread(store.decide, call_id, DENIED, None)
            return await self._wait(held, store, deadline)
        finally:
            del self.held[call_id]

    def _tell(self, held: HeldCall) -> None:
        for listener in self.on_hold:
            try:
                listener(held)
            except Exception:  # an alert's bug must not refuse the call it is about
                log.exception("shadowgate: telling of a held MCP call failed")

    async def _wait(self, held: Held, store: ApprovalStore, deadline: float) -> Decided:
        call_id = held.call.request_id
        while True:
            if held.local is not None:
                if held.local.decision == ABANDONED:  # the client left: recorded unless decided first
                    return await asyncio.to_thread(store.decide, call_id, ABANDONED, None)
                return held.local
            found = await asyncio.to_thread(store.decision, call_id)
            if found is not None:
                return found
            remaining = deadline - time.time()
            if remaining <= 0:
                return await asyncio.to_thread(store.decide, call_id, TIMEOUT, None)
            held.wake.clear()
            try:
                await asyncio.wait_for(held.wake.wait(), min(POLL_SECONDS, remaining))
            except TimeoutError:
                pass

    def decided_here(self, call_id: str, decided: Decided) -> None:
        """The click landed on this instance: wake the call at once (it may be held elsewhere)."""
        held = self.held.get(call_id)
        if held is not None:
            held.local = decided
            held.wake.set()

    def stop(self) -> list[Held]:
        """The proxy stops: each call still held is decided abandoned (in the shared folder too, so
        a click elsewhere is told) and woken to be refused; returns them, for their rows (their
        flows get no answer or error hook once the proxy is gone). Blocking: called from done()."""
        self.stopping = True
        stopped = [h for h in self.held.values() if h.call.request_id not in self.recorded]
        for held in stopped:
            call_id = held.call.request_id
            decided = Decided(ABANDONED, None, time.time())
            if self.store is not None:
                try:
                    decided = self.store.decide(call_id, ABANDONED, None)
                except OSError as e:
                    log.warning("shadowgate: could not record MCP call %s as abandoned: %s", call_id, e)
            held.local = decided if decided.decision != APPROVED else Decided(ABANDONED, None, time.time())
            held.wake.set()
            self.recorded.add(call_id)
        return stopped

    def client_gone(self, client: Any) -> None:
        for held in self.held.values():
            if held.client is client and held.local is None:
                held.local = Decided(ABANDONED, None, time.time())
                held.wake.set()


def requester_of(call: McpCall) -> str | None:
    """Whose call it is, in canonical_identity form; None: an identity no approval can be tied to."""
    return canonical_identity(call.person.user or call.client_ip or "-")


def notify(policy: ApprovalPolicy, alerts: AlertsPolicy | None, summary: dict, link: str) -> list[str]:
    """Tell the approvers (blocking: run on a thread); the errors of the destinations that failed."""
    tool, who = summary.get("tool") or "(no tool name)", summary.get("requester")
    title = f"MCP call waiting for approval: {tool}"
    until = time.strftime("%H:%M:%S UTC", time.gmtime(summary["expires"]))
    text = (
        f"{who}'s agent wants to call {tool} on {summary['host']} ({summary['reason']}). "
        f"Approve or deny by {until}; without a decision it is refused."
    )
    fields = {
        "server": summary.get("server"),
        "user": who,
        "group": summary.get("group"),
        "arguments": summary.get("arguments"),
        "proxy": HOSTNAME,
    }
    errors = []
    destinations = alerts.destinations if alerts is not None else {}
    for name in policy.notify:
        dest = destinations.get(name)
        try:
            if dest is None:
                raise DeliveryError("not an alerts destination")
            if dest.webhook:
                post_json(dest.webhook, webhook_payload(dest.shape, title, text, fields, link))
            elif dest.email and dest.smtp:
                password = secret_from(dest.password_env, dest.password_file)
                server = SmtpServer.parse(dest.smtp, starttls=dest.starttls, user=dest.user, password=password)
                lines = "\n".join(f"{k}: {v}" for k, v in fields.items() if v)
                send_mail(server, dest.sender, dest.email, f"[shadowgate] {title}", f"{text}\n\n{link}\n\n{lines}")
            else:
                raise DeliveryError("syslog cannot carry an approval link")
        except DeliveryError as e:
            errors.append(f"{name}: {e}")
    return errors
