"""A workflow that exercises every kind of payload a worker sends: input,
activity arguments and results, a child workflow, a signal, a query, an
update, a memo, a keyword search attribute, and an activity failure with
details. Used by the end-to-end tests and the demo."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from temporalio.exceptions import ActivityError, ApplicationError

SEARCH_ATTRIBUTE = "CustomKeyword"
FAILURE_MESSAGE = "activity failed on purpose"


@activity.defn
async def charge_card(card: str) -> str:
    return f"charged {card}"


@activity.defn
async def fail_with_details(secret: str) -> None:
    raise ApplicationError(FAILURE_MESSAGE, f"{secret}-failure-detail", non_retryable=True)


@workflow.defn
class ChildWorkflow:
    @workflow.run
    async def run(self, arg: str) -> str:
        return f"child got {arg}"


@workflow.defn
class ScenarioWorkflow:
    def __init__(self) -> None:
        self.signal: str | None = None
        self.update: str | None = None
        self.stage = "started"

    @workflow.run
    async def run(self, secret: str) -> dict:
        charged = await workflow.execute_activity(
            charge_card, f"{secret}-card", start_to_close_timeout=timedelta(seconds=30)
        )
        child = await workflow.execute_child_workflow(
            ChildWorkflow.run, f"{secret}-child-input", id=f"{workflow.info().workflow_id}-child"
        )
        detail = None
        message = None
        try:
            await workflow.execute_activity(
                fail_with_details,
                secret,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_attempts=1),
            )
        except ActivityError as e:
            if isinstance(e.cause, ApplicationError):
                message = e.cause.message
                detail = e.cause.details[0] if e.cause.details else None
        self.stage = f"waiting with {secret}-query-state"
        await workflow.wait_condition(lambda: self.signal is not None and self.update is not None)
        return {
            "charged": charged,
            "child": child,
            "failure_detail": detail,
            "failure_message": message,
            "signal": self.signal,
            "update": self.update,
            "memo": workflow.memo_value("note", type_hint=str),
        }

    @workflow.signal
    def add_note(self, note: str) -> None:
        self.signal = note

    @workflow.query
    def stage_now(self) -> str:
        return self.stage

    @workflow.update
    def set_value(self, value: str) -> str:
        self.update = value
        return f"accepted {value}"


@dataclass
class Outcome:
    workflow_id: str
    secrets: list[str]
    search_attribute: str
    seen: dict


async def run(
    address: str,
    task_queue: str | None = None,
    namespace: str = "default",
    rpc_metadata: dict[str, str] | None = None,
) -> Outcome:
    """Runs the scenario with a worker and a client both connected to `address`."""
    import asyncio

    from temporalio.client import Client
    from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
    from temporalio.worker import Worker

    token = uuid.uuid4().hex[:12]
    secret = f"SECRET{token}"
    sa_value = f"visible-{token}"
    task_queue = task_queue or f"scenario-{token}"
    client = await Client.connect(address, namespace=namespace, rpc_metadata=rpc_metadata or {})
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ScenarioWorkflow, ChildWorkflow],
        activities=[charge_card, fail_with_details],
    ):
        handle = await client.start_workflow(
            ScenarioWorkflow.run,
            f"{secret}-input",
            id=f"scenario-{token}",
            task_queue=task_queue,
            memo={"note": f"{secret}-memo"},
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(SearchAttributeKey.for_keyword(SEARCH_ATTRIBUTE), sa_value)]
            ),
        )
        # Wait for the workflow to reach its waiting stage, through queries.
        stage = ""
        for _ in range(300):
            stage = await handle.query(ScenarioWorkflow.stage_now)
            if stage.startswith("waiting"):
                break
            await asyncio.sleep(0.1)
        update = await handle.execute_update(ScenarioWorkflow.set_value, f"{secret}-update")
        await handle.signal(ScenarioWorkflow.add_note, f"{secret}-signal")
        result = await handle.result()
    seen = dict(result, query=stage, update_result=update)
    return Outcome(handle.id, [secret], sa_value, seen)


async def stored(address: str, workflow_id: str) -> dict:
    """What the server holds for a workflow and its child, read directly:
    raw protobuf bytes of the histories and of DescribeWorkflowExecution."""
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
    from temporalio.client import Client

    client = await Client.connect(address)
    out = {}
    for wid in (workflow_id, f"{workflow_id}-child"):
        history = await client.get_workflow_handle(wid).fetch_history()
        desc = await client.workflow_service.describe_workflow_execution(
            DescribeWorkflowExecutionRequest(namespace="default", execution=WorkflowExecution(workflow_id=wid))
        )
        out[wid] = {
            "history": history,
            "history_bytes": b"".join(e.SerializeToString() for e in history.events),
            "describe_bytes": desc.SerializeToString(),
        }
    return out
