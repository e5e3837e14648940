"""One plain call through a gateway, reporting the error text if it fails."""

from __future__ import annotations

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.service import RPCError


async def first_call_error(address: str) -> str | None:
    try:
        client = await Client.connect(address)
        await client.workflow_service.get_system_info(GetSystemInfoRequest())
        return None
    except RPCError as e:
        return f"{e.status.name}: {e.message}"
    except RuntimeError as e:  # connect-time failures surface as RuntimeError
        return str(e)
