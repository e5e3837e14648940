"""Raw grpcio (grpc-core) calls to Temporal's services, and decoding of
`grpc-status-details-bin` (a google.rpc.Status) without googleapis-common-protos."""

from __future__ import annotations

from dataclasses import dataclass

import grpc
from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory
from temporalio.api.operatorservice.v1 import service_pb2_grpc as operator_grpc
from temporalio.api.workflowservice.v1 import service_pb2_grpc as workflow_grpc

DETAILS_KEY = "grpc-status-details-bin"


def _status_class():
    # google/rpc/status.proto, built in a private pool (nothing else here
    # ships it): Status { int32 code = 1; string message = 2; repeated Any details = 3; }
    pool = descriptor_pool.DescriptorPool()
    any_file = descriptor_pb2.FileDescriptorProto()
    any_pb2.DESCRIPTOR.CopyToProto(any_file)
    pool.Add(any_file)
    f = descriptor_pb2.FileDescriptorProto(
        name="google/rpc/status.proto", package="google.rpc", syntax="proto3",
        dependency=["google/protobuf/any.proto"],
    )
    m = f.message_type.add(name="Status")
    fd = descriptor_pb2.FieldDescriptorProto
    m.field.add(name="code", number=1, type=fd.TYPE_INT32, label=fd.LABEL_OPTIONAL)
    m.field.add(name="message", number=2, type=fd.TYPE_STRING, label=fd.LABEL_OPTIONAL)
    m.field.add(
        name="details", number=3, type=fd.TYPE_MESSAGE, label=fd.LABEL_REPEATED,
        type_name=".google.protobuf.Any",
    )
    pool.Add(f)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("google.rpc.Status"))


_Status = _status_class()


@dataclass
class Status:
    code: int
    message: str
    details: list[tuple[str, bytes]]  # (type URL, packed message bytes)

    def type_urls(self) -> list[str]:
        return [t for t, _ in self.details]

    def unpack(self, cls):
        """The first detail whose type URL names `cls`, parsed."""
        name = cls.DESCRIPTOR.full_name
        for url, value in self.details:
            if url.rsplit("/", 1)[-1] == name:
                return cls.FromString(value)
        raise AssertionError(f"no {name} in status details {self.type_urls()}")


def decode_status(raw: bytes) -> Status:
    s = _Status.FromString(raw)
    return Status(s.code, s.message, [(d.type_url, d.value) for d in s.details])


def details_bin(err: grpc.RpcError) -> bytes | None:
    """The raw `grpc-status-details-bin` trailer of a failed grpcio call."""
    for k, v in err.trailing_metadata() or ():
        if k == DETAILS_KEY:
            return v
    return None


class Stubs:
    """WorkflowService and OperatorService stubs on one plaintext channel."""

    def __init__(self, address: str):
        self.channel = grpc.insecure_channel(address)
        self.workflow = workflow_grpc.WorkflowServiceStub(self.channel)
        self.operator = operator_grpc.OperatorServiceStub(self.channel)

    def __enter__(self) -> "Stubs":
        return self

    def __exit__(self, *exc) -> None:
        self.channel.close()


def call_error(fn, request, metadata=(), timeout: float = 20.0) -> grpc.RpcError:
    """Makes a unary call that must fail; returns its error (code, details,
    trailing metadata)."""
    try:
        response = fn(request, metadata=metadata, timeout=timeout)
    except grpc.RpcError as e:
        return e
    shown = " ".join(str(response).split())
    raise AssertionError(f"expected the call to fail, it returned: {shown[:300]}{'…' if len(shown) > 300 else ''}")


def describe_error(err: grpc.RpcError) -> str:
    return f"{err.code()}: {err.details()!r} trailers={err.trailing_metadata()!r}"
