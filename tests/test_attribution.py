import pytest

from shadowgate.config.attribution import Directory
from shadowgate.config.attribution import KeyFingerprinter
from shadowgate.config.attribution import account_hint
from shadowgate.config.attribution import find_api_key
from shadowgate.config.attribution import load_directory
from shadowgate.config.attribution import load_or_create_secret
from shadowgate.config.yamlfile import ConfigError


@pytest.fixture
def directory(tmp_path):
    path = tmp_path / "users.yaml"
    path.write_text(
        "networks:\n"
        "  - {cidr: 10.1.0.0/16, group: office}\n"
        "  - {cidr: 10.1.2.15/32, user: alice}\n"
        "  - {cidr: 'fd00::/8', group: v6-lab}\n"
        "users:\n"
        "  alice: {group: engineering}\n"
        "  bob: finance\n"
    )
    return load_directory(path)


@pytest.mark.parametrize(
    "proxy_user, ip, user, group",
    [
        ("bob", "10.1.2.15", "bob", "finance"),  # proxy auth wins over the network map
        (None, "10.1.2.15", "alice", "engineering"),  # longest prefix wins
        (None, "10.1.9.9", "10.1.9.9", "office"),
        (None, "::ffff:10.1.9.9", "::ffff:10.1.9.9", "office"),
        (None, "fd00::1", "fd00::1", "v6-lab"),
        (None, "192.0.2.1", "192.0.2.1", None),
        (None, "not-an-ip", "not-an-ip", None),
        ("carol", "10.1.9.9", "carol", None),
    ],
)
def test_person(directory, proxy_user, ip, user, group):
    person = directory.person(proxy_user, ip)
    assert (person.user, person.group) == (user, group)


def test_broken_map_names_line(tmp_path):
    path = tmp_path / "users.yaml"
    path.write_text("networks:\n  - {cidr: 10.0.0.0/8}\n")
    with pytest.raises(ConfigError, match=r"users.yaml:2: network 10.0.0.0/8 needs a 'user' or a 'group'"):
        load_directory(path)


@pytest.mark.parametrize(
    "headers, query, key",
    [
        ({"authorization": "Bearer sk-proj-abc"}, "", "sk-proj-abc"),
        ({"x-api-key": "sk-ant-api03-x"}, "", "sk-ant-api03-x"),
        ({"api-key": "azurekey"}, "api-version=2024-10-21", "azurekey"),
        ({"x-goog-api-key": "AIzaSyX"}, "", "AIzaSyX"),
        ({}, "alt=sse&key=AIzaSyQ", "AIzaSyQ"),
        (
            {
                "authorization": "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261128/us-east-1/bedrock/aws4_request, SignedHeaders=host, Signature=abc"
            },
            "",
            "AKIAIOSFODNN7EXAMPLE",
        ),
        ({}, "", None),
    ],
)
def test_find_api_key(headers, query, key):
    assert find_api_key(headers, query) == key


def test_fingerprints_are_keyed_stable_and_never_the_key(tmp_path):
    secret = load_or_create_secret(tmp_path / "k")
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o600
    assert load_or_create_secret(tmp_path / "k") == secret
    a = KeyFingerprinter(secret).sighting({"authorization": "Bearer sk-proj-abc"}, "")
    b = KeyFingerprinter(secret).sighting({"authorization": "Bearer sk-proj-abc"}, "")
    other = KeyFingerprinter(b"another secret of enough length!!").sighting({"authorization": "Bearer sk-proj-abc"}, "")
    assert a == b and a.fingerprint != other.fingerprint
    assert "abc" not in a.fingerprint and a.kind == "openai-project"


def test_account_hint():
    assert account_hint({"openai-organization": "org-1", "openai-project": "proj_2"}) == "org=org-1;project=proj_2"
    assert account_hint({}) is None


def test_empty_directory_uses_ip():
    assert Directory().person(None, "10.0.0.1").user == "10.0.0.1"
