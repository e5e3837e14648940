"""The upstream as Temporal Cloud runs it: nginx with TLS in front of the dev
server, requiring a client certificate (mTLS) or an API key. Certificates are
generated for this run. sealgate is configured only through Temporal's own
TEMPORAL_* variables."""

from __future__ import annotations

import asyncio
import uuid

import grpc_errors
import harness
import pytest
import scenario
from test_python_sdk import assert_ciphertext_only

API_KEY = f"key-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def cloud(workdir, temporal):
    d = workdir / "nginx"
    d.mkdir(parents=True, exist_ok=True)
    pki = harness.generate_pki(d / "pki", ["localhost", "127.0.0.1"])
    nginx = harness.start_nginx(d, pki, temporal.port, API_KEY)
    yield nginx, pki
    nginx.proc.stop()


def gate(workdir, name: str, env: dict):
    d = workdir / name
    config = harness.sealgate_config(d, harness.generated_codec_section())
    return harness.start_sealgate(d, config, env=env)


def tls_env(nginx_port: int, pki, client_cert: bool) -> dict:
    env = {
        "TEMPORAL_ADDRESS": f"127.0.0.1:{nginx_port}",
        "TEMPORAL_TLS": "true",
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(pki.files["ca.pem"]),
        "TEMPORAL_TLS_SERVER_NAME": "localhost",
    }
    if client_cert:
        env["TEMPORAL_TLS_CLIENT_CERT_PATH"] = str(pki.files["client.pem"])
        env["TEMPORAL_TLS_CLIENT_KEY_PATH"] = str(pki.files["client-key.pem"])
    return env


def test_full_scenario_over_mtls(workdir, cloud, temporal):
    nginx, pki = cloud
    g = gate(workdir, "sealgate-mtls", tls_env(nginx.mtls_port, pki, client_cert=True))
    try:
        outcome = asyncio.run(scenario.run(g.address))
        assert outcome.seen["signal"].endswith("-signal")
        stored = asyncio.run(scenario.stored(temporal.address, outcome.workflow_id))
        assert_ciphertext_only(stored, outcome.secrets)
    finally:
        assert g.proc.stop() == 0
    # The calls really went through nginx.
    assert "POST /temporal.api.workflowservice.v1.WorkflowService/" in (nginx.proc.log.parent / "nginx-access.log").read_text()


def test_missing_client_certificate_is_a_clear_error(workdir, cloud):
    nginx, pki = cloud
    g = gate(workdir, "sealgate-nocert", tls_env(nginx.mtls_port, pki, client_cert=False))
    try:
        err = asyncio.run(grpc_errors.first_call_error(g.address))
        assert err is not None, "the call must fail"
        assert "No required SSL certificate" in err or "certificate" in err.lower(), err
        assert "TEMPORAL_TLS_CLIENT" in err, f"says what to set: {err}"
    finally:
        assert g.proc.stop() == 0


def test_api_key_mode(workdir, cloud, temporal):
    nginx, pki = cloud
    env = {
        "TEMPORAL_ADDRESS": f"127.0.0.1:{nginx.api_key_port}",
        "TEMPORAL_API_KEY": API_KEY,
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(pki.files["ca.pem"]),
        "TEMPORAL_TLS_SERVER_NAME": "localhost",
    }
    good = gate(workdir, "sealgate-apikey", env)
    bad = gate(workdir, "sealgate-badkey", dict(env, TEMPORAL_API_KEY="wrong"))
    try:
        assert asyncio.run(grpc_errors.first_call_error(good.address)) is None
        err = asyncio.run(grpc_errors.first_call_error(bad.address))
        assert err is not None and "401" in err and "API key" in err, err
    finally:
        assert good.proc.stop() == 0
        assert bad.proc.stop() == 0
