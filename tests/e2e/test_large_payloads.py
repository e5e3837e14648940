"""Large payloads: a 5 MB workflow input and a 3 MB activity result go
through sealgate with [external_storage] on, against a real S3 emulator
(moto_server). Temporal stores references only, the bucket ciphertext only,
the worker sees plaintext, and the Codec Server's /download serves an
offloaded payload as the Web UI asks for it. With offload off, the size
guard refuses the 5 MB input before the server and no workflow exists."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from urllib import request as http

import boto3
import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

import harness
import large_payloads
import stored
from test_kms import CREDS

BUCKET = "sealgate-payloads"
REFERENCE = b"temporal.api.sdk.v1.ExternalStorageReference"
MB = 1000 * 1000


@pytest.fixture(scope="module")
def s3(workdir):
    proc, endpoint = harness.start_moto(workdir / "moto-s3")
    client = boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket=BUCKET)
    yield endpoint, client
    proc.stop()


def gate(workdir, temporal, name: str, storage: str, codec_port: int | None = None):
    d = workdir / name
    body = harness.generated_codec_section() + storage + (
        "[codec_server]\nlisten = \"127.0.0.1:0\"\n" if codec_port else ""
    )
    config = harness.sealgate_config(d, body)
    return harness.start_sealgate(
        d, config, env=CREDS, upstream=f"http://{temporal.address}", codec_port=codec_port
    )


def refused_start(address: str, wid: str, data: str) -> RPCError:
    """Starts a workflow through `address` expecting it refused: the error."""
    from datetime import timedelta

    async def start() -> RPCError:
        c = await Client.connect(address)
        with pytest.raises(RPCError) as e:
            await c.start_workflow(
                "Anything", data, id=wid, task_queue="nobody-polls", rpc_timeout=timedelta(seconds=20)
            )
        return e.value

    return asyncio.run(start())


def workflow_exists(address: str, wid: str) -> bool:
    async def describe() -> bool:
        c = await Client.connect(address)
        try:
            await c.get_workflow_handle(wid).describe()
            return True
        except RPCError as e:
            assert e.status == RPCStatusCode.NOT_FOUND, e
            return False

    return asyncio.run(describe())


def storage_section(endpoint: str) -> str:
    return (
        f'[external_storage]\nbucket = "{BUCKET}"\nendpoint = "{endpoint}"\n'
        'region = "us-east-1"\npath_style = true\nprefix = "e2e/"\n'
    )


def test_large_payloads_are_offloaded_encrypted_and_inlined_back(workdir, temporal, s3):
    endpoint, client = s3
    codec_port = harness.free_port()
    g = gate(workdir, temporal, "sealgate-offload", storage_section(endpoint), codec_port)
    canary = f"CANARY{uuid.uuid4().hex[:12]}"
    big_input = canary + "".join(uuid.uuid4().hex for _ in range(5 * MB // 32))
    wid = f"large-{uuid.uuid4().hex[:8]}"
    queue = f"large-{uuid.uuid4().hex[:8]}"

    async def run() -> dict:
        c = await Client.connect(g.address)
        async with Worker(
            c, task_queue=queue, workflows=[large_payloads.LargePayloadWorkflow],
            activities=[large_payloads.make_large],
        ):
            return await c.execute_workflow(
                large_payloads.LargePayloadWorkflow.run, args=[big_input, canary, 3 * MB],
                id=wid, task_queue=queue,
            )

    try:
        outcome = asyncio.run(asyncio.wait_for(run(), timeout=120))
        # The worker saw both payloads whole and in clear.
        assert outcome == {
            "input_len": len(big_input), "input_has_canary": True,
            "result_len": 3 * MB, "result_has_canary": True,
        }

        # Temporal stored references only: no canary, the large ones small.
        history = asyncio.run(stored.stored(temporal.address, [wid]))[wid]
        assert canary.encode() not in history["history_bytes"]
        refs = [
            p for e in history["history"].events for _, p in stored.payloads(e)
            if p.metadata.get("messageType") == REFERENCE
        ]
        assert len(refs) >= 2, "the input and the activity result are references"
        for r in refs:
            assert r.metadata["encoding"] == b"json/protobuf"
            assert r.external_payloads and r.external_payloads[0].size_bytes > 2 * MB
            claim = json.loads(r.data)
            assert claim["driverName"] == "aws.s3driver"
            assert claim["claimData"]["bucket"] == BUCKET

        # The bucket holds ciphertext only: each object an encrypted Payload.
        objects = client.list_objects_v2(Bucket=BUCKET, Prefix="e2e/v0/ns/default/")["Contents"]
        assert len(objects) >= 2
        for o in objects:
            body = client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
            assert canary.encode() not in body
            p = Payload()
            p.ParseFromString(body)
            assert p.metadata["encoding"] == b"binary/encrypted"

        # The Web UI's storage-aware calls: /decode with preserveStorageRefs
        # leaves the reference; /download fetches and decodes it.
        ref = refs[0]
        as_json = {
            "metadata": {k: base64.b64encode(v).decode() for k, v in ref.metadata.items()},
            "data": base64.b64encode(ref.data).decode(),
        }

        def codec(path: str, payloads: list) -> dict:
            req = http.Request(
                f"http://127.0.0.1:{codec_port}{path}", method="POST",
                data=json.dumps({"payloads": payloads}).encode(),
                headers={"Content-Type": "application/json", "X-Namespace": "default"},
            )
            with http.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read())

        kept = codec("/decode?preserveStorageRefs=true", [as_json])["payloads"][0]
        assert base64.b64decode(kept["metadata"]["messageType"]) == REFERENCE
        got = codec("/download?preserveStorageRefs=true", [as_json])["payloads"][0]
        data = base64.b64decode(got["data"])
        assert canary.encode() in data and len(data) > 2 * MB
    finally:
        assert g.proc.stop() == 0, g.proc.tail()


def test_without_offload_the_size_guard_refuses_before_the_server(workdir, temporal):
    g = gate(workdir, temporal, "sealgate-no-offload", "")
    wid = f"too-large-{uuid.uuid4().hex[:8]}"
    try:
        big = "".join(uuid.uuid4().hex for _ in range(5 * MB // 32))
        err = refused_start(g.address, wid, big)
        assert err.status == RPCStatusCode.RESOURCE_EXHAUSTED, err
        assert "sealgate did not forward" in err.message and "max_payload_bytes" in err.message, err.message
    finally:
        assert g.proc.stop() == 0, g.proc.tail()
    assert not workflow_exists(temporal.address, wid), "no workflow was created"


def test_a_failed_upload_forwards_nothing_and_names_the_store(workdir, temporal, s3):
    endpoint, _ = s3
    storage = storage_section(endpoint).replace(f'bucket = "{BUCKET}"', 'bucket = "no-such-bucket"')
    g = gate(workdir, temporal, "sealgate-offload-broken", storage)
    wid = f"unstored-{uuid.uuid4().hex[:8]}"
    try:
        # Random hex: compression cannot bring it under the threshold.
        err = refused_start(g.address, wid, "".join(uuid.uuid4().hex for _ in range(MB // 32)))
        assert err.status == RPCStatusCode.UNAVAILABLE, err
        assert "s3://no-such-bucket/" in err.message and "NoSuchBucket" in err.message, err.message
    finally:
        assert g.proc.stop() == 0, g.proc.tail()
    assert not workflow_exists(temporal.address, wid), "nothing was forwarded"
