"""Fixtures' building blocks for the screening tests that need their own upstream: a certificate
for the test hosts (and any extra name) signed by the test CA, and a proxy with a policy whose
upstream redirect points at that server."""

from __future__ import annotations

from pathlib import Path

import trustme

from tests.conftest import TEST_HOSTS


def cert_files(test_ca: trustme.CA, folder: Path, *extra_hosts: str) -> tuple[str, str]:
    """(certificate, key) PEM paths for every test host, the extra names and 127.0.0.1."""
    cert = test_ca.issue_cert(*TEST_HOSTS, *extra_hosts, "127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    return str(folder / "cert.pem"), str(folder / "key.pem")


def policy_proxy(folder: Path, upstream, test_ca: trustme.CA, policy: str, upstream_port: int):
    """A proxy with this policy whose upstream connections go to upstream_port."""
    from tests.conftest import start_proxy

    (folder / "policy.yaml").write_text(policy)
    return start_proxy(
        folder / "p", upstream, test_ca, "--set", f"shadowgate_policy={folder / 'policy.yaml'}",
        upstream_port=upstream_port,
    )  # fmt: skip
