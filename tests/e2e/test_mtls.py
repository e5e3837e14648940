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


def test_a_temporal_toml_profile_reads_as_the_python_sdk_reads_it(workdir, cloud, temporal):
    """sealgate and the Python SDK's envconfig loader read one temporal.toml
    (and the same TEMPORAL_* variables over it) to the same connection
    settings; then both connect with them, sealgate adding the metadata."""
    import json
    import subprocess
    from pathlib import Path

    from temporalio.client import Client
    from temporalio.envconfig import ClientConfigProfile
    from temporalio.service import TLSConfig

    nginx, pki = cloud
    d = workdir / "envconfig"
    d.mkdir(parents=True, exist_ok=True)
    profiles = d / "temporal.toml"
    profiles.write_text(
        f"""
[profile.default]
address = "127.0.0.1:1"

[profile.cloud]
address = "127.0.0.1:{nginx.api_key_port}"
namespace = "default"
api_key = "{API_KEY}"
[profile.cloud.tls]
server_ca_cert_path = "{pki.files['ca.pem']}"
server_name = "wrong.example"
[profile.cloud.grpc_meta]
X_Team = "payments"
x-dropped = "by an empty variable"
"""
    )
    env = {
        "TEMPORAL_CONFIG_FILE": str(profiles),
        "TEMPORAL_PROFILE": "cloud",
        "TEMPORAL_TLS_SERVER_NAME": "localhost",  # a variable over the file
        "TEMPORAL_GRPC_META_X_REGION": "eu",
        "TEMPORAL_GRPC_META_X_DROPPED": "",
    }

    sdk = ClientConfigProfile.load(config_source=profiles, override_env_vars=env).to_client_connect_config()
    config = harness.sealgate_config(d, harness.generated_codec_section())
    out = subprocess.run(
        [str(harness.sealgate_bin()), "check-config", "--json", str(config)],
        capture_output=True,
        text=True,
        env=dict(__import__("os").environ, **env),
    )
    assert out.returncode == 0, out.stderr
    ours = json.loads(out.stdout)["upstreams"][0]

    assert ours["address"] == f"https://{sdk['target_host']}"
    tls = sdk["tls"]
    assert isinstance(tls, TLSConfig) and ours["tls"] == "TLS"
    assert ours["server_name"] == tls.domain == "localhost"
    assert Path(ours["server_ca"]).read_bytes() == tls.server_root_ca_cert
    assert ours["client_cert"] is None and tls.client_cert is None
    assert ours["api_key_set"] and sdk["api_key"] == API_KEY
    assert sorted(ours["grpc_meta"]) == sorted(sdk["rpc_metadata"]) == ["x-region", "x-team"]
    assert API_KEY not in out.stdout, "check-config never prints the key"

    access_log = nginx.proc.log.parent / "nginx-access.log"
    seen_before: list[int] = []

    async def both() -> None:
        # Direct, as the SDK connects with the profile.
        direct = await Client.connect(**sdk)
        await direct.count_workflows()
        seen_before.append(len(access_log.read_text().splitlines()))
        # Through sealgate, configured by the same file and variables only.
        g = gate(workdir, "sealgate-envconfig", env)
        try:
            via = await Client.connect(g.address, namespace="default")
            await via.count_workflows()
        finally:
            assert g.proc.stop() == 0

    asyncio.run(both())
    through_sealgate = access_log.read_text().splitlines()[seen_before[0] :]
    assert through_sealgate, "sealgate's calls went through nginx"
    assert all("team=payments region=eu" in line for line in through_sealgate), through_sealgate
