"""Envelope encryption with AWS KMS, against a real KMS emulator (moto_server).

sealgate wraps its data keys with a KMS key it reaches through the endpoint
override and the standard credential chain (environment variables here). The
history the server stores is checked independently: boto3 unwraps the data
key, `cryptography` opens the payload.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import uuid

import boto3
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload

import harness
from test_cli import cli, input_payload

CREDS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    # No instance metadata on a laptop or CI box: do not wait for it.
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="module")
def kms(workdir):
    proc, endpoint = harness.start_moto(workdir / "moto")
    client = boto3.client(
        "kms", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    arn = client.create_key(Description="sealgate e2e KEK")["KeyMetadata"]["Arn"]
    yield endpoint, client, arn
    proc.stop()


def config(endpoint: str, arn: str) -> str:
    return (
        # Compression off so the test can open payloads with AES-GCM alone.
        "[codec]\ncompression = false\n"
        "[codec.kms.aws]\nprovider = \"awskms\"\nregion = \"us-east-1\"\n"
        f"endpoint = \"{endpoint}\"\nkeys = [\"{arn}\"]\n"
        f"[codec.policies.default]\nactive_key = \"{arn}\"\n"
    )


def test_awskms_envelope_end_to_end(workdir, temporal, kms):
    endpoint, client, arn = kms
    d = workdir / "sealgate-kms"
    path = harness.sealgate_config(d, config(endpoint, arn))
    up = f"http://{temporal.address}"
    gate = harness.start_sealgate(d, path, env=CREDS, upstream=up)
    secret = f"SECRET{uuid.uuid4().hex[:12]}-kms"
    wid = f"kms-{uuid.uuid4().hex[:8]}"
    try:
        cli("workflow", "start", "--address", gate.address, "--type", "Anything",
            "--task-queue", "nobody-polls", "--workflow-id", wid, "--input", json.dumps(secret))
        via = input_payload(cli("workflow", "show", "--address", gate.address,
                                "--workflow-id", wid, "--output", "json"))
        assert json.loads(base64.b64decode(via["data"])) == secret
    finally:
        assert gate.proc.stop() == 0, gate.proc.tail()

    # What the server stored: envelope metadata naming the KMS key.
    stored = input_payload(cli("workflow", "show", "--address", temporal.address,
                               "--workflow-id", wid, "--output", "json"))
    meta = {k: base64.b64decode(v) for k, v in stored["metadata"].items()}
    assert meta["encoding"] == b"binary/encrypted"
    assert meta["encryption-key-id"].decode() == arn
    data = base64.b64decode(stored["data"])
    assert secret.encode() not in data

    # Opened independently: KMS unwraps the DEK (bound to the namespace by
    # its encryption context), AES-GCM opens the payload.
    wrapped = base64.b64decode(meta["encryption-dek"])
    with pytest.raises(client.exceptions.InvalidCiphertextException):
        client.decrypt(CiphertextBlob=wrapped, KeyId=arn)
    with pytest.raises(client.exceptions.InvalidCiphertextException):
        client.decrypt(CiphertextBlob=wrapped, KeyId=arn, EncryptionContext={"temporal-namespace": "other"})
    dek = client.decrypt(
        CiphertextBlob=wrapped, KeyId=arn, EncryptionContext={"temporal-namespace": "default"}
    )["Plaintext"]
    inner = Payload()
    inner.ParseFromString(AESGCM(dek).decrypt(data[:12], data[12:], None))
    assert inner.metadata["encoding"] == b"json/plain"
    assert json.loads(inner.data) == secret

    # A fresh sealgate (empty DEK cache) decodes by asking KMS.
    gate = harness.start_sealgate(d, path, env=CREDS, upstream=up)
    try:
        via = input_payload(cli("workflow", "show", "--address", gate.address,
                                "--workflow-id", wid, "--output", "json"))
        assert json.loads(base64.b64decode(via["data"])) == secret
        cli("workflow", "terminate", "--address", gate.address, "--workflow-id", wid, "--reason", "done")
    finally:
        assert gate.proc.stop() == 0, gate.proc.tail()
    log = (d / "sealgate.log").read_text()
    assert "new data key" in log or "key policy" in log
    assert base64.b64encode(dek).decode() not in log


def test_kms_refusing_fails_closed(workdir, temporal, kms):
    """A KEK that KMS does not have: nothing is stored, the caller is told."""
    endpoint, _, arn = kms
    missing = arn.rsplit("/", 1)[0] + "/" + str(uuid.uuid4())
    d = workdir / "sealgate-kms-missing"
    path = harness.sealgate_config(d, config(endpoint, missing))
    gate = harness.start_sealgate(d, path, env=CREDS, upstream=f"http://{temporal.address}")
    wid = f"kms-missing-{uuid.uuid4().hex[:8]}"
    try:
        r = subprocess.run(
            [harness.temporal_cli(), "workflow", "start", "--address", gate.address, "--type", "Anything",
             "--task-queue", "nobody-polls", "--workflow-id", wid, "--input", '"x"'],
            capture_output=True, text=True, timeout=60,
        )
        assert r.returncode != 0
        assert "KMS" in r.stderr and "aws" in r.stderr, r.stderr
    finally:
        assert gate.proc.stop() == 0, gate.proc.tail()
    r = subprocess.run(
        [harness.temporal_cli(), "workflow", "describe", "--address", temporal.address, "--workflow-id", wid],
        capture_output=True, text=True, timeout=60,
    )
    assert r.returncode != 0, "the workflow must not exist upstream"


def test_data_keys_wrapped_without_a_context_still_decode(workdir, kms):
    """Temporal Proxy (and sealgate before it bound data keys) wrapped them
    with no encryption context: those payloads still decode, while a data key
    bound to one namespace does not open in another."""
    endpoint, client, arn = kms
    d = workdir / "sealgate-kms-legacy"
    d.mkdir(parents=True, exist_ok=True)
    path = harness.sealgate_config(d, config(endpoint, arn))
    dek = AESGCM.generate_key(bit_length=256)
    inner = Payload(metadata={"encoding": b"json/plain"}, data=b'"legacy secret"').SerializeToString()

    def payload(wrapped: bytes) -> dict:
        nonce = uuid.uuid4().bytes[:12]
        data = nonce + AESGCM(dek).encrypt(nonce, inner, None)
        meta = {"encoding": b"binary/encrypted", "encryption-key-id": arn.encode(),
                "encryption-dek": base64.b64encode(wrapped)}
        return {"metadata": {k: base64.b64encode(v).decode() for k, v in meta.items()},
                "data": base64.b64encode(data).decode()}

    def decode(p: dict, namespace: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(harness.sealgate_bin()), "payloads", "decode", "--config", str(path), "--namespace", namespace],
            input=json.dumps({"payloads": [p]}), capture_output=True, text=True, timeout=60,
            env={**os.environ, **CREDS, "SEALGATE_UPSTREAM": "http://127.0.0.1:1"},
        )

    legacy = client.encrypt(KeyId=arn, Plaintext=dek)["CiphertextBlob"]
    r = decode(payload(legacy), "default")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)["payloads"][0]
    assert base64.b64decode(out["data"]) == b'"legacy secret"'

    bound = client.encrypt(KeyId=arn, Plaintext=dek, EncryptionContext={"temporal-namespace": "orders"})["CiphertextBlob"]
    r = decode(payload(bound), "orders")
    assert r.returncode == 0, r.stderr
    assert base64.b64decode(json.loads(r.stdout)["payloads"][0]["data"]) == b'"legacy secret"'
    r = decode(payload(bound), "payments")
    assert r.returncode != 0 and "InvalidCiphertextException" in r.stderr, (r.stdout, r.stderr)
