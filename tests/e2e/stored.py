"""What the server stored, read back: histories and describe answers, and
every Payload inside a protobuf message. Shared by the SDK tests."""

from __future__ import annotations

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload, WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client


def payloads(msg: Message, path: str = ""):
    """Every temporal.api.common.v1.Payload inside a message: (path, payload)."""
    if isinstance(msg, Payload):
        yield path, msg
        return
    for field, value in msg.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        name = f"{path}.{field.name}" if path else field.name
        if field.is_repeated:
            if field.message_type.GetOptions().map_entry:
                for k, v in value.items():
                    if isinstance(v, Message):
                        yield from payloads(v, f"{name}[{k}]")
            else:
                for i, v in enumerate(value):
                    yield from payloads(v, f"{name}[{i}]")
        else:
            yield from payloads(value, name)


async def stored(address: str, workflow_ids: list[str]) -> dict:
    """Each workflow's history and DescribeWorkflowExecution answer, read at
    `address`, with their serialized bytes (to search for canaries)."""
    client = await Client.connect(address)
    out = {}
    for wid in workflow_ids:
        history = await client.get_workflow_handle(wid).fetch_history()
        desc = await client.workflow_service.describe_workflow_execution(
            DescribeWorkflowExecutionRequest(namespace="default", execution=WorkflowExecution(workflow_id=wid))
        )
        out[wid] = {
            "history": history,
            "history_bytes": b"".join(e.SerializeToString() for e in history.events),
            "describe": desc,
            "describe_bytes": desc.SerializeToString(),
        }
    return out
