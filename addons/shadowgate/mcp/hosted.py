"""Provider-hosted MCP: the MCP servers an AI request asks the provider to call for the model.

The provider, not the agent, talks to these servers, so the proxy never sees their JSON-RPC: the
only place to apply the `mcp:` policy is the request that names them, before it leaves.

- OpenAI Responses: `tools: [{"type": "mcp", "server_url" | "connector_id" | "tunnel_id",
  "allowed_tools": [names] | {"tool_names": [names], "read_only": bool}}]`.
- Anthropic Messages (MCP connector): `mcp_servers: [{"type": "url", "url", "name",
  "tool_configuration": {"enabled", "allowed_tools"}}]`, and in the later beta a
  `{"type": "mcp_toolset", "mcp_server_name", "default_config": {"enabled"}, "configs":
  {name: {"enabled"}}}` entry in `tools`.

A server is named by its URL's host; a connector or tunnel by its id (so the policy lists
`connector_gmail` as a host). A URL that URL parsers may read as different hosts (userinfo, a
backslash, whitespace, another scheme: enforce/hosts.py plain_url_host) is refused whatever the
allow-list says: the provider's parser may connect to a host the proxy's did not judge. A request that lets the provider call every tool of a server whose
tools the policy rules (no allowed_tools) is refused: the proxy cannot know what those are.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mitmproxy import http

from shadowgate.config.policy import ALLOW
from shadowgate.config.policy import BLOCK
from shadowgate.config.policy import OBSERVE_PREFIX
from shadowgate.config.policy import Decision
from shadowgate.config.policy import Facts
from shadowgate.config.policy import McpPolicy
from shadowgate.config.policy import McpServer
from shadowgate.config.policy import Policy
from shadowgate.enforce.hosts import plain_url_host
from shadowgate.flow import FlowRecord
from shadowgate.flow import flow_record
from shadowgate.mcp.jsonrpc import charset_of
from shadowgate.mcp.jsonrpc import parse_json
from shadowgate.mcp.jsonrpc import request_content
from shadowgate.stages.identify import PARSE_INLINE_BYTES
from shadowgate.wireformats import error_body
from shadowgate.wireformats.decoding import UndecodableBody
from shadowgate.wireformats.multipart import is_multipart
from shadowgate.wireformats.openai_platform import batch_file_lines

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HostedServer:
    host: str | None  # the server URL's host, or a connector's or tunnel's id; None: a URL read two ways
    tools: tuple[str, ...] | None  # the tools the provider may call; None: every tool


@dataclass(frozen=True, slots=True)
class HostedRefusal:
    rule_id: str
    message: str


def _names(value: Any) -> tuple[str, ...] | None:
    """A list of tool names, or None when it is not one (then every tool may be called)."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


URL_RULE = "mcp:server-url"


def _openai_tool(tool: dict) -> HostedServer:
    if tool.get("server_url") is not None:
        host = plain_url_host(tool.get("server_url"))
    else:
        ident = tool.get("connector_id") or tool.get("tunnel_id")
        host = ident.lower() if isinstance(ident, str) else ""
    allowed = tool.get("allowed_tools")
    if allowed is None:
        return HostedServer(host, None)
    if isinstance(allowed, dict):
        allowed = allowed.get("tool_names")  # read_only alone leaves the names open
    return HostedServer(host, _names(allowed))


def _toolset_tools(toolset: dict) -> tuple[str, ...] | None:
    default = toolset.get("default_config")
    enabled_by_default = not (isinstance(default, dict) and default.get("enabled") is False)
    if enabled_by_default:
        return None  # every tool but the ones switched off: not a list the policy can check
    configs = toolset.get("configs")
    if not isinstance(configs, dict):
        return ()
    return tuple(name for name, c in configs.items() if isinstance(c, dict) and c.get("enabled") is True)


def _anthropic_server(server: dict, toolsets: dict[str, dict]) -> HostedServer:
    host = plain_url_host(server.get("url"))
    name = server.get("name")
    toolset = toolsets.get(name) if isinstance(name, str) else None
    if toolset is not None:
        return HostedServer(host, _toolset_tools(toolset))
    config = server.get("tool_configuration")
    if not isinstance(config, dict):
        return HostedServer(host, None)
    if config.get("enabled") is False:
        return HostedServer(host, ())
    allowed = config.get("allowed_tools")
    return HostedServer(host, None if allowed is None else _names(allowed))


def hosted_servers(body: Any) -> list[HostedServer]:
    """The provider-hosted MCP servers a request body names, wherever it names them: OpenAI
    Responses `tools`, Anthropic `mcp_servers`, a Realtime event's or session request's `session`
    or `response`, each request of a batch (an Anthropic Message Batch's `requests[].params`, an
    OpenAI Batch input line's `body`, red-team F43), an Evals run's `data_source.sampling_params`,
    a Gemini Interactions `mcp_server` tool (F102), and any place a provider adds next: every
    object of the body, at any depth, is read for a tools list and an `mcp_servers` list."""
    servers: list[HostedServer] = []
    stack: list[Any] = [body] if isinstance(body, dict | list) else []
    seen = 0
    while stack and seen < MAX_NODES:
        node = stack.pop()
        seen += 1
        if isinstance(node, dict):
            servers += _servers_in(node)
            children: Any = node.values()
        else:
            children = node
        stack.extend(child for child in children if isinstance(child, dict | list))
    if stack:  # a body too large to walk: judged as naming a server no allow-list lists
        servers.append(HostedServer("(a body too large to read for MCP servers)", None))
    if (stored := _stored_prompt(body)) is not None:
        servers.append(stored)
    return servers


# How many objects and arrays of a body are read for MCP servers: far more than any call holds.
MAX_NODES = 200_000


def _servers_in(body: dict) -> list[HostedServer]:
    """The servers one object names itself: in its `tools` list and its `mcp_servers` list."""
    servers: list[HostedServer] = []
    tools = body.get("tools")
    tools = tools if isinstance(tools, list) else []
    toolsets: dict[str, dict] = {}
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        if tool.get("type") == "mcp":
            servers.append(_openai_tool(tool))
        elif tool.get("type") == "mcp_server":  # Gemini Interactions: {type, name, url, headers}
            servers.append(HostedServer(plain_url_host(tool.get("url")), None))
        elif tool.get("type") == "mcp_toolset" and isinstance(tool.get("mcp_server_name"), str):
            toolsets[tool["mcp_server_name"]] = tool
    mcp_servers = body.get("mcp_servers")
    for server in mcp_servers if isinstance(mcp_servers, list) else []:
        if isinstance(server, dict):
            servers.append(_anthropic_server(server, toolsets))
    return servers


# The model references (wireformats) whose saved object may hold hosted MCP tools.
_SAVED_TOOLS = ("the stored prompt", "a batch line on a stored prompt", "the workflow")


def _stored_prompt(body: Any) -> HostedServer | None:
    """A Responses call (or a batch line's) on a stored prompt brings the tools saved with it,
    whatever model it names (red-team F113): servers no allow-list can list."""
    for call in (body, body.get("body") if isinstance(body, dict) else None):
        prompt = call.get("prompt") if isinstance(call, dict) else None
        if isinstance(prompt, dict) and isinstance(prompt.get("id"), str):
            return HostedServer(f"(the tools saved with stored prompt {prompt['id'][:64]})", None)
    return None


ServerLookup = Callable[[str], tuple[McpServer | None, McpServer | None]]


def hosted_refusal(servers: list[HostedServer], mcp: McpPolicy, lookup: ServerLookup) -> HostedRefusal | None:
    """Why the policy refuses a request naming these servers, or None.

    `lookup(host)` is McpPolicy.server_for_facts for the requesting person on that host:
    (the entry that fits the person, the first entry listing the host)."""
    for hosted in servers:
        if hosted.host is None:
            return HostedRefusal(
                URL_RULE,
                "shadowgate: an MCP server URL is not a plain http(s) URL (userinfo, a backslash, whitespace "
                f"or another scheme), which URL parsers may read as different hosts (rule {URL_RULE})",
            )
        host = hosted.host or "(no host)"
        server, listed = lookup(hosted.host)
        if server is None:
            if listed is not None:
                rule = f"mcp:{listed.id}:access"
                return HostedRefusal(rule, f"shadowgate: MCP server {host} is not allowed for you (rule {rule})")
            if mcp.unlisted == BLOCK:
                rule = "mcp:unlisted"
                return HostedRefusal(rule, f"shadowgate: MCP server {host} is not on the allow-list (rule {rule})")
            continue
        if (refusal := _needs_approval(hosted, server, host)) is not None:
            return refusal
        rule = f"mcp:{server.id}:tools"
        if hosted.tools is None:
            if server.allow_tools is not None or server.deny_tools:
                return HostedRefusal(
                    rule,
                    f"shadowgate: name the tools of MCP server {host} in allowed_tools: "
                    f"some of its tools are not allowed (rule {rule})",
                )
            continue
        denied = [t for t in hosted.tools if not server.tool_allowed(t)]
        if denied:
            return HostedRefusal(
                rule, f"shadowgate: tool {denied[0]!r} is not allowed on MCP server {host} (rule {rule})"
            )
    return None


def _needs_approval(hosted: HostedServer, server: McpServer, host: str) -> HostedRefusal | None:
    """A hosted call under an `approve` rule cannot be held: the provider calls the server itself,
    and the proxy never sees the call, let alone its arguments, before it runs."""
    rule = server.approve
    if rule is None:
        return None
    if hosted.tools is None or rule.arguments:
        needing = None  # every tool may be called, or arguments decide, and they are not visible
    else:
        needing = next((t for t in hosted.tools if rule.reason(t, None) is not None), "")
        if not needing:
            return None
    rule_id = f"mcp:{server.id}:approval"
    what = f"tool {needing!r}" if needing else "a call"
    return HostedRefusal(
        rule_id,
        f"shadowgate: {what} on MCP server {host} needs an approver's decision, and a provider-hosted MCP "
        f"call cannot be held for one: the provider calls the server itself. Call it through an MCP client "
        f"on your side instead (rule {rule_id})",
    )


def check_hosted(flow: http.HTTPFlow, policy: Policy) -> Awaitable[None] | None:
    """The MCP servers an AI request asks its provider to call, checked before it leaves (a large
    body on a thread)."""
    request = flow.request
    if policy.mcp is None or request.stream or not request.raw_content:
        return None
    try:
        content = request_content(request.raw_content, request.headers.get("content-encoding"))
    except UndecodableBody:
        # Not readable here, so not checkable: an MCP policy fails closed (Redact does the same
        # for DLP); observe mode records it.
        refuse_unreadable(flow, policy)
        return None
    content_type = request.headers.get("content-type", "")
    if len(content) > PARSE_INLINE_BYTES:
        return _check_off_loop(flow, policy, content, content_type)
    refuse_hosted(flow, policy, _readings(content, content_type))
    return None


async def _check_off_loop(flow: http.HTTPFlow, policy: Policy, content: bytes, content_type: str) -> None:
    refuse_hosted(flow, policy, await asyncio.to_thread(_readings, content, content_type))


def _readings(content: bytes, content_type: str) -> list[Any]:
    """The JSON documents a request body holds: each reading of a JSON body, or each line of a
    batch input file uploaded as multipart (its requests name hosted servers too)."""
    if is_multipart(content_type):
        return batch_file_lines(content, content_type)
    return parse_json(content, charset_of(content_type))


def refuse_unreadable(flow: http.HTTPFlow, policy: Policy) -> None:
    """An AI call whose body's content coding the proxy cannot undo: it may name hosted MCP
    servers, and nothing here can tell."""
    rule = "mcp:unreadable"
    message = "shadowgate: the request body's content coding cannot be read, so its MCP tools cannot be checked"
    _refuse(flow, policy, HostedRefusal(rule, f"{message} (rule {rule})"))


def refuse_hosted(flow: http.HTTPFlow, policy: Policy, readings: list[Any]) -> HostedRefusal | None:
    """Refuse an AI call (the provider's 403) whose hosted MCP servers or tools the policy does
    not allow, in any reading of its body, and record why on its FlowRecord; in observe mode
    only record it."""
    rec: FlowRecord | None = flow_record(flow)
    refusal = hosted_verdict(rec, policy, readings) if rec is not None else None
    if rec is None or refusal is None:
        return None
    log.info("shadowgate: a call to %s names a refused MCP server: %s", rec.host, refusal.message)
    _refuse(flow, policy, refusal)
    return refusal


def hosted_verdict(rec: FlowRecord, policy: Policy, readings: list[Any]) -> HostedRefusal | None:
    """Why the policy refuses the hosted MCP servers these bodies (readings of one request, or the
    documents of one Realtime message) name for this request's person; None when it does not."""
    servers = [s for body in readings for s in hosted_servers(body)]
    reference = rec.facts.model_reference if rec.facts is not None else None
    if reference is not None and reference.startswith(_SAVED_TOOLS):
        # A stored prompt or a saved workflow may carry hosted MCP tools the request does not
        # show: judged as a server no allow-list lists (red-team F113), as its model is judged
        # as any model. Other references (a router's choice, a profile ARN) name a model only
        # (red-team H1: they were refused too).
        servers.append(HostedServer(f"(the tools saved with {reference})", None))
    mcp = policy.mcp
    if mcp is None or not servers:
        return None
    person = rec.person
    return hosted_refusal(
        servers,
        mcp,
        lambda host: mcp.server_for_facts(
            Facts(host=host or "", user=person.user, group=person.group, client_ip=rec.client_ip)
        ),
    )


def _refuse(flow: http.HTTPFlow, policy: Policy, refusal: HostedRefusal) -> None:
    rec: FlowRecord | None = flow_record(flow)
    if rec is None:
        return
    if policy.observe:
        if rec.decision.action == ALLOW:
            rec.decision = Decision(OBSERVE_PREFIX + BLOCK, refusal.rule_id, refusal.message)
        return
    rec.decision = Decision(BLOCK, refusal.rule_id, refusal.message)
    error, headers = error_body(rec.route.parser if rec.route is not None else None, 403, refusal.message)
    headers = {"content-type": "application/json", "cache-control": "no-store", **headers}
    flow.response = http.Response.make(403, json.dumps(error).encode(), headers)
