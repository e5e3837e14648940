"""The TypeScript client (@temporalio/client on grpc-js) raises the same
errors through sealgate as directly. `ts/client-errors.js` runs every case
on two sides at once: the dev server directly, and sealgate in front of it,
each with its own TypeScript worker (connected the same way as the client)
for the cases that need one (queries). Compared: the SDK's error class and
fields, the message (ids aside), and the raw gRPC status of the same
request (code, details, the types and text inside grpc-status-details-bin)."""

from __future__ import annotations

import base64
import json
import subprocess
import uuid
from pathlib import Path

from temporalio.api.errordetails.v1 import WorkflowExecutionAlreadyStartedFailure

from rpcstatus import decode_status

TS = Path(__file__).parent / "ts"

NOT_FOUND, ALREADY_EXISTS, INVALID_ARGUMENT = 5, 6, 3


def node(script: str, *args: str, timeout: int = 240) -> dict:
    assert (TS / "node_modules" / "@temporalio" / "client").is_dir(), (
        "node modules missing: scripts/test runs `npm install` in tests/e2e/ts"
    )
    r = subprocess.run(["node", script, *args], cwd=TS, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"{script} failed ({r.returncode}):\n{r.stderr[-4000:]}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def without_ids(side: dict, text: str) -> str:
    """`text` with the side's ids, run ids and secret replaced by names."""
    ids = side["ids"]
    # Longest first: the workflow ids contain the task queue name.
    for key in sorted(ids, key=lambda k: -len(ids[k])):
        text = text.replace(ids[key], f"<{key}>")
    return text


def normalized(side: dict) -> dict:
    return json.loads(without_ids(side, json.dumps(side["cases"])))


def status_of(side: dict, case: str):
    raw = side["cases"][case]["grpc"]["statusDetailsBin"]
    assert raw, f"{case}: no grpc-status-details-bin: {side['cases'][case]['grpc']}"
    return decode_status(base64.b64decode(raw))


def test_typescript_client_error_semantics(temporal, sealgate):
    prefix = f"tsce-{uuid.uuid4().hex[:8]}"
    out = node("client-errors.js", prefix, f"direct={temporal.address}", f"sealgate={sealgate.address}")
    direct, via = normalized(out["direct"]), normalized(out["sealgate"])

    # Directly: what the TypeScript SDK promises, so that the comparison means something.
    for case in ("describeMissing", "resultMissing", "queryMissing", "signalMissing"):
        assert direct[case]["sdk"]["error"] == "WorkflowNotFoundError", (case, direct[case])
        assert direct[case]["sdk"]["workflowId"] == "<missing>", (case, direct[case])
        assert direct[case]["grpc"]["code"] == NOT_FOUND, (case, direct[case])
    assert direct["startTwice"]["sdk"]["error"] == "WorkflowExecutionAlreadyStartedError", direct["startTwice"]
    assert direct["startTwice"]["grpc"]["code"] == ALREADY_EXISTS, direct["startTwice"]
    assert direct["queryOk"]["sdk"] == {"error": None, "value": "status <secret>"}, direct["queryOk"]
    # A query handler that throws and a query type with no handler: both
    # INVALID_ARGUMENT, which the SDK raises as QueryNotRegisteredError.
    assert direct["queryFailing"]["sdk"]["error"] == "QueryNotRegisteredError", direct["queryFailing"]
    assert direct["queryFailing"]["sdk"]["message"].startswith("query handler failed: <secret>"), direct["queryFailing"]
    assert direct["queryFailing"]["grpc"]["code"] == INVALID_ARGUMENT, direct["queryFailing"]
    assert direct["queryUnknown"]["sdk"]["error"] == "QueryNotRegisteredError", direct["queryUnknown"]
    assert "did not register a handler for noSuchQuery" in direct["queryUnknown"]["sdk"]["message"], direct["queryUnknown"]
    assert direct["queryUnknown"]["grpc"]["code"] == INVALID_ARGUMENT, direct["queryUnknown"]
    assert direct["resultCompleted"]["sdk"] == {"error": None, "value": "finished <secret>"}, direct["resultCompleted"]
    failed = direct["resultFailed"]["sdk"]
    assert failed["error"] == "WorkflowFailedError" and failed["cause"]["error"] == "ApplicationFailure", failed
    assert failed["cause"]["type"] == "OrderRejected" and failed["cause"]["message"] == "workflow failed: <secret>", failed
    assert failed["cause"]["failureDetails"] == [{"secret": "<secret>"}], failed
    assert direct["queryRejected"]["sdk"]["error"] == "QueryRejectedError", direct["queryRejected"]

    # Through sealgate: the same, case by case.
    assert sorted(via) == sorted(direct)
    mismatches = []
    for case in direct:
        if via[case]["sdk"] != direct[case]["sdk"]:
            mismatches.append(f"{case} (SDK): direct {direct[case]['sdk']}\n  sealgate {via[case]['sdk']}")
        if "grpc" in direct[case]:
            d, v = direct[case]["grpc"], via[case]["grpc"]
            if (v["code"], v["details"]) != (d["code"], d["details"]):
                mismatches.append(f"{case} (raw gRPC): direct {d}\n  sealgate {v}")
    assert not mismatches, "\n".join(mismatches)

    # grpc-status-details-bin: the same detail types and text.
    for case in ("describeMissing", "resultMissing", "queryMissing", "signalMissing", "startTwice",
                 "queryFailing", "queryUnknown"):
        d, v = (status_of(out[side], case) for side in ("direct", "sealgate"))
        d_text, v_text = without_ids(out["direct"], d.message), without_ids(out["sealgate"], v.message)
        assert (v.code, v_text, v.type_urls()) == (d.code, d_text, d.type_urls()), f"{case}: direct {d}\nsealgate {v}"
    for side in ("direct", "sealgate"):
        failure = status_of(out[side], "startTwice").unpack(WorkflowExecutionAlreadyStartedFailure)
        assert failure.run_id == out[side]["ids"]["targetRunId"] and failure.start_request_id, f"{side}: {failure}"


def test_failed_query_message_is_not_plaintext_at_the_server(temporal, sealgate):
    """A worker behind sealgate answers a query; a client reading the dev
    server directly (no key) gets the successful answer as ciphertext, and
    should get no plaintext from a failing handler either: the failure's
    message (here naming the workflow's encrypted input) is failure text,
    which `codec.encode_failure_attributes` (on here) keeps from the server."""
    wid = f"tsqs-{uuid.uuid4().hex[:8]}"
    secret = f"SECRET{uuid.uuid4().hex[:12]}"
    out = node("query-through-server.js", sealgate.address, temporal.address, wid, secret)

    assert out["status"]["error"] is not None and "binary/encrypted" in out["status"]["message"], (
        f"the successful query answer reached a keyless client readable: {out['status']}"
    )
    assert out["failing"]["error"] == "QueryNotRegisteredError", out["failing"]
    assert secret not in out["failing"]["message"], (
        "a failing query handler's message crossed sealgate in plaintext: the dev server answered a keyless "
        f"client with {out['failing']['message']!r} (the worker's WorkflowQueryResult/RespondQueryTaskCompleted "
        "error_message string is forwarded as it is)"
    )
