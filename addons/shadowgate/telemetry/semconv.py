"""Every OpenTelemetry name shadowgate emits, and the bucket lists, in one place.

The GenAI semantic conventions are all still "Development" and moved to their own repository
(open-telemetry/semantic-conventions-genai); the token metrics in particular are being
redesigned there. When a name changes upstream, it changes here and nowhere else. We are a new
emitter, so only the newest names are used (gen_ai.provider.name, never gen_ai.system).
"""

from __future__ import annotations

# The schema the GenAI names below were taken from (gen_ai.provider.name arrived after v1.36).
SCHEMA_URL = "https://opentelemetry.io/schemas/1.37.0"
INSTRUMENTATION_SCOPE = "shadowgate"

# --- span and metric attributes: GenAI ---
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_STREAM = "gen_ai.request.stream"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"  # seconds
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
GEN_AI_TOKEN_TYPE = "gen_ai.token.type"
GEN_AI_TOKEN_TYPE_INPUT = "input"
GEN_AI_TOKEN_TYPE_OUTPUT = "output"
# Opt-In (content capture only): the prompt, in the semconv's structured JSON form.
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"

# gen_ai.operation.name for a catalogued AI service's request whose endpoint the catalog does not
# describe (e.g. a chat app's own web API). The semconv allows custom values.
OPERATION_UNKNOWN = "unknown"

# --- MCP tool calls (semantic-conventions-genai docs/gen-ai/mcp.md, Development) ---
# Spans are named `execute_tool {gen_ai.tool.name}` (the GenAI execute_tool span, which the MCP
# client span is compatible with; the MCP page alone would name it `tools/call {tool}`).
OPERATION_EXECUTE_TOOL = "execute_tool"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
# gen_ai.tool.call.id is the model's id for the call; MCP traffic never carries it, so the
# JSON-RPC id goes in jsonrpc.request.id instead.
JSONRPC_REQUEST_ID = "jsonrpc.request.id"
RPC_RESPONSE_STATUS_CODE = "rpc.response.status_code"  # the JSON-RPC error code, when there is one
MCP_METHOD_NAME = "mcp.method.name"
MCP_SESSION_ID = "mcp.session.id"
MCP_PROTOCOL_VERSION = "mcp.protocol.version"
NETWORK_PROTOCOL_NAME = "network.protocol.name"
NETWORK_TRANSPORT = "network.transport"
ERROR_TYPE_TOOL = "tool_error"  # a tools/call result with isError: true
ERROR_TYPE_OTHER = "_OTHER"

# --- span and metric attributes: general (Stable) ---
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"
ENDUSER_ID = "enduser.id"  # spans only: user ids never go on metrics (unbounded cardinality)
SERVICE_NAME = "service.name"
SERVICE_VERSION = "service.version"
DEFAULT_SERVICE_NAME = "shadowgate"

# --- shadowgate's own attributes ---
SG_REQUEST_ID = "shadowgate.request_id"  # ai_requests.request_id: joins a span to its row
SG_DECISION = "shadowgate.decision"  # the policy's action: allow (block, coach, redirect, ...)
SG_RULE_ID = "shadowgate.rule_id"
SG_CATEGORY = "shadowgate.category"  # the catalog's category: api, chat-web, ...
SG_COST_USD = "shadowgate.cost_usd"
SG_USAGE_ESTIMATED = "shadowgate.usage_estimated"
SG_INSPECTED = "shadowgate.inspected"
SG_MCP_SERVER_NAME = "shadowgate.mcp.server_name"  # serverInfo.name from the session's initialize
SG_MCP_TRANSPORT = "shadowgate.mcp.transport"  # streamable-http, or sse (2024-11-05)
# DLP findings by type: span attribute shadowgate.dlp.findings.<type> = count, and the
# SG_DLP_FINDINGS counter with SG_DLP_FINDING_TYPE.
SG_DLP_FINDINGS_PREFIX = "shadowgate.dlp.findings."
SG_DLP_FINDING_TYPE = "shadowgate.dlp.finding_type"

# --- metrics ---
METRIC_OPERATION_DURATION = "gen_ai.client.operation.duration"  # histogram, s
METRIC_TOKEN_USAGE = "gen_ai.client.token.usage"  # histogram, {token}
METRIC_TIME_TO_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"  # histogram, s
METRIC_DECISIONS = "shadowgate.decisions"  # counter, {request}, by shadowgate.decision
METRIC_COST = "shadowgate.cost"  # counter, USD
METRIC_DLP_FINDINGS = "shadowgate.dlp.findings"  # counter, {finding}, by shadowgate.dlp.finding_type
METRIC_MCP_CLIENT_OPERATION_DURATION = "mcp.client.operation.duration"  # histogram, s, every MCP request

UNIT_SECONDS = "s"
UNIT_TOKENS = "{token}"
UNIT_REQUESTS = "{request}"
UNIT_FINDINGS = "{finding}"
UNIT_USD = "USD"

# Advisory ExplicitBucketBoundaries from the GenAI metrics conventions.
DURATION_BUCKETS: tuple[float, ...] = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
TOKEN_BUCKETS: tuple[float, ...] = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
# Advisory ExplicitBucketBoundaries of mcp.client.operation.duration.
MCP_DURATION_BUCKETS: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
# Time to first chunk uses the duration buckets.
TIME_TO_FIRST_CHUNK_BUCKETS = DURATION_BUCKETS
