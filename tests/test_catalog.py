import pytest

from shadowgate.config.catalog import load_catalog
from shadowgate.config.catalog import site_of
from shadowgate.config.yamlfile import ConfigError
from shadowgate.wireformats import PARSERS


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(known_parsers=PARSERS)


def test_catalog_size_and_categories(catalog):
    assert len(catalog.providers) >= 600  # issue 17: the long tail is the point of a shadow-AI catalog
    categories = {p.category for p in catalog.providers.values()}
    assert {
        "api",
        "chat-web",
        "coding-assistant",
        "image-voice",
        "local-runtime",
        "research-writing",
        "agent-builder",
        "embedded-saas",
        "vendor-site",
    } <= categories
    required = {
        "openai",
        "azure-openai",
        "anthropic",
        "gemini-api",
        "vertex-ai",
        "aws-bedrock",
        "mistral",
        "cohere",
        "groq",
        "together",
        "fireworks",
        "deepseek",
        "xai",
        "perplexity",
        "openrouter",
        "huggingface-inference",
        "replicate",
        "cerebras",
    }
    assert required <= set(catalog.providers), required - set(catalog.providers)


@pytest.mark.parametrize(
    "host, expected",
    [
        ("api.openai.com", "openai"),
        ("API.OpenAI.com.", "openai"),
        ("api.openai.com:443", "openai"),
        ("acme-eastus.openai.azure.com", "azure-openai"),
        ("api.anthropic.com", "anthropic"),
        ("generativelanguage.googleapis.com", "gemini-api"),
        ("bedrock-runtime.us-east-1.amazonaws.com", "aws-bedrock"),
        ("api.openai.com.evil.example", None),
        ("notopenai.com", None),
        ("openai.com.example.org", None),
        ("openai.azure.com", None),
        ("googleapis.com", None),
        ("www.googleapis.com", None),
        ("s3.amazonaws.com", None),
        ("example.com", None),
        ("", None),
        ("10.0.0.1", None),
    ],
)
def test_host_matching_is_by_labels_not_substrings(catalog, host, expected):
    found = catalog.match_host(host)
    assert (found.id if found else None) == expected


@pytest.mark.parametrize(
    "host, method, path, wire_format, operation, model",
    [
        ("api.openai.com", "POST", "/v1/chat/completions", "openai-chat", "chat", None),
        ("api.openai.com", "POST", "/v1/responses", "openai-responses", "chat", None),
        ("api.openai.com", "POST", "/v1/embeddings", "openai-embeddings", "embeddings", None),
        ("api.openai.com", "GET", "/v1/models", None, None, None),
        (
            "x.openai.azure.com",
            "POST",
            "/openai/deployments/gpt4o-prod/chat/completions?api-version=2024-10-21",
            "azure-openai",
            "chat",
            "gpt4o-prod",
        ),
        ("api.anthropic.com", "POST", "/v1/messages", "anthropic-messages", "chat", None),
        (
            "generativelanguage.googleapis.com",
            "POST",
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            "gemini",
            "generate_content",
            "gemini-2.5-flash",
        ),
        (None, "POST", "/v1/chat/completions", "openai-chat", "chat", None),
        (None, "POST", "/openai/deployments/dep/chat/completions", "azure-openai", "chat", "dep"),
        (None, "POST", "/v1/messages", "anthropic-messages", "chat", None),
        (None, "POST", "/api/chat", "ollama", "chat", None),
        (None, "POST", "/index.html", None, None, None),
    ],
)
def test_routes(catalog, host, method, path, wire_format, operation, model):
    provider = catalog.match_host(host) if host else None
    route = catalog.route(provider, method, path)
    if wire_format is None:
        assert route is None
    else:
        assert (route.wire_format, route.operation, route.model_from_path) == (wire_format, operation, model)


def test_site_of_groups_unknown_endpoints():
    assert site_of("api.openai.com.evil.example") == "evil.example"
    assert site_of("llm.corp.co.uk") == "corp.co.uk"
    assert site_of("localhost") == "localhost"


BASE = """\
categories:
  api: APIs
wire_formats:
  openai-chat:
    endpoints:
      - {method: POST, path: '/v1/chat/completions', operation: chat, parser: openai-chat}
providers:
"""


@pytest.mark.parametrize(
    "entry, line, reason",
    [
        (
            "  - id: x\n    name: X\n    vendor: X\n    category: nope\n    hosts: [x.example.com]\n",
            8,
            "unknown category 'nope'",
        ),
        (
            "  - id: x\n    name: X\n    vendor: X\n    category: api\n    hosts: ['*.com']\n",
            12,
            "would match a whole public suffix",
        ),
        (
            "  - id: x\n    name: X\n    vendor: X\n    category: api\n    hosts: [https://x.com/v1]\n",
            12,
            "is not a host name",
        ),
        (
            "  - id: x\n    name: X\n    vendor: X\n    category: api\n    hosts: [x.com]\n    wire_formats: [smoke-signals]\n",
            8,
            "unknown wire format 'smoke-signals'",
        ),
        ("  - id: X Y\n    name: X\n    vendor: X\n    category: api\n    hosts: [x.com]\n", 8, "must be lower-case"),
        (
            "  - id: x\n    name: X\n    vendor: X\n    category: api\n    hosts: [x.com]\n  - id: y\n    name: Y\n    vendor: Y\n    category: api\n    hosts: [x.com]\n",
            13,
            "already listed by 'x'",
        ),
        ("  - id: x\n    name: X\n    vendor: X\n    category: api\n    hosts: [x.com\n", None, "invalid YAML"),
    ],
)
def test_broken_catalog_names_file_line_and_reason(tmp_path, entry, line, reason):
    path = tmp_path / "providers.yaml"
    path.write_text(BASE + entry)
    with pytest.raises(ConfigError) as e:
        load_catalog(path, known_parsers=PARSERS)
    assert e.value.path == str(path)
    if line is not None:
        assert e.value.line == line
    assert reason in e.value.reason
    assert str(e.value).startswith(f"{path}:")


def test_unknown_parser_is_rejected(tmp_path):
    path = tmp_path / "providers.yaml"
    path.write_text(BASE.replace("parser: openai-chat", "parser: telepathy").replace("providers:\n", "providers: []\n"))
    with pytest.raises(ConfigError, match="unknown parser 'telepathy'"):
        load_catalog(path, known_parsers=PARSERS)


def test_the_same_files_give_the_same_catalog_and_a_rewrite_a_new_one(tmp_path):
    path = tmp_path / "providers.yaml"
    entry = "  - id: x\n    name: X\n    vendor: X\n    category: api\n    hosts: [{host}]\n"
    path.write_text(BASE + entry.format(host="aaa.com"))
    first = load_catalog(path, known_parsers=PARSERS)
    assert load_catalog(path, known_parsers=PARSERS) is first  # parsed and checked once
    # Rewritten at once with as many bytes: the file's time may not move, its contents did.
    path.write_text(BASE + entry.format(host="bbb.com"))
    second = load_catalog(path, known_parsers=PARSERS)
    assert second is not first and second.match("bbb.com") and not second.match("aaa.com")
    # The parsers and the overlays are part of what a catalog was loaded from.
    with pytest.raises(ConfigError, match="unknown parser 'openai-chat'"):
        load_catalog(path, known_parsers=("anthropic-messages",))
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text("providers:\n" + entry.format(host="ccc.com"))
    assert load_catalog(path, known_parsers=PARSERS, extra=[overlay]).match("ccc.com")
    # A file that turns bad is refused again, file:line and all, not served from memory.
    path.write_text(BASE + entry.format(host="bbb.com") + "  - id: x\n")
    with pytest.raises(ConfigError) as e:
        load_catalog(path, known_parsers=PARSERS)
    assert str(e.value).startswith(f"{path}:")


@pytest.mark.parametrize(
    ("host", "path", "wire_format"),
    [
        ("api.openai.com", "/v1/responses/resp_abc?stream=true&starting_after=3", "openai-responses"),
        ("x.openai.azure.com", "/openai/v1/responses/resp_abc", "azure-openai"),
        ("x.openai.azure.com", "/openai/responses/resp_abc?api-version=2025-04-01-preview", "azure-openai"),
        ("api.openai.com", "/v1/responses/resp_abc/input_items", None),  # no spend: not metered
    ],
)
def test_a_response_retrieval_is_metered(catalog, host, path, wire_format):
    """GET /v1/responses/{id} carries a background response's usage (red-team F48)."""
    route = catalog.route(catalog.match_host(host), "GET", path)
    if wire_format is None:
        assert route is None
    else:
        assert (route.wire_format, route.operation) == (wire_format, "retrieve_response")
