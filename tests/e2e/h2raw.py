"""A raw HTTP/2 (h2c, prior knowledge) client for gRPC requests that no gRPC
stack would send: duplicated or odd content types, exactly as given. It
reports the response as it arrived on the wire: HTTP status, the header
fields in order, whether the response was trailers-only (its only HEADERS
frame carried END_STREAM), the DATA bytes and the trailers."""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

import h2.config
import h2.connection
import h2.events
import hpack
from hyperframe.frame import ContinuationFrame, Frame, HeadersFrame

Headers = list[tuple[bytes, bytes]]


def grpc_frame(message: bytes, compressed: bool = False) -> bytes:
    """One length-prefixed gRPC message: flag byte, 4-byte big-endian length."""
    return struct.pack(">BI", 1 if compressed else 0, len(message)) + message


@dataclass
class Response:
    status: int | None = None
    headers: Headers = field(default_factory=list)
    trailers: Headers = field(default_factory=list)
    data: bytes = b""
    trailers_only: bool = False
    reset: int | None = None  # RST_STREAM error code, if the stream was reset
    goaway: int | None = None  # GOAWAY error code, if the connection was closed

    def _all(self) -> Headers:
        return self.headers + self.trailers

    def header(self, name: str) -> str | None:
        """The first value of `name` in the headers or trailers."""
        for k, v in self._all():
            if k.decode().lower() == name:
                return v.decode("latin-1")
        return None

    @property
    def grpc_status(self) -> int | None:
        v = self.header("grpc-status")
        return None if v is None else int(v)

    @property
    def grpc_message(self) -> str | None:
        v = self.header("grpc-message")
        return None if v is None else unquote_to_bytes(v).decode("utf-8", "replace")

    def describe(self) -> str:
        """For assertion messages."""
        return (
            f"HTTP {self.status}, trailers-only={self.trailers_only}, reset={self.reset}, "
            f"goaway={self.goaway}, headers={self.headers}, trailers={self.trailers}, "
            f"{len(self.data)} data bytes"
        )


def sent_header_blocks(wire: bytes) -> list[Headers]:
    """Decodes the HEADERS (+CONTINUATION) blocks in bytes a client is about
    to send on a fresh connection (after the preface), to prove what went
    out. A fresh HPACK decoder matches because these are the connection's
    first header blocks."""
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    if wire.startswith(preface):
        wire = wire[len(preface):]
    decoder = hpack.Decoder()
    blocks: list[Headers] = []
    pending = b""
    while len(wire) >= 9:
        frame, length = Frame.parse_frame_header(memoryview(wire[:9]))
        frame.parse_body(memoryview(wire[9 : 9 + length]))
        wire = wire[9 + length :]
        if isinstance(frame, (HeadersFrame, ContinuationFrame)):
            pending += frame.data
            if "END_HEADERS" in frame.flags:
                blocks.append([(bytes(k), bytes(v)) for k, v in decoder.decode(pending, raw=True)])
                pending = b""
    return blocks


def post(
    address: str,
    path: str,
    body: bytes,
    headers: Headers,
    timeout: float = 15.0,
) -> tuple[Response, Headers]:
    """POSTs `body` to `path` with `headers` after the pseudo-headers, in the
    given order and unvalidated (duplicates and non-ASCII bytes go out as
    they are). Returns the response and the header block that was really
    sent (decoded back from the bytes written to the socket)."""
    host, port = address.rsplit(":", 1)
    config = h2.config.H2Configuration(
        client_side=True,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=False,
    )
    conn = h2.connection.H2Connection(config=config)
    conn.initiate_connection()
    stream_id = conn.get_next_available_stream_id()
    pseudo: Headers = [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", path.encode()),
        (b":authority", address.encode()),
    ]
    conn.send_headers(stream_id, pseudo + headers)
    conn.send_data(stream_id, body, end_stream=True)
    wire = conn.data_to_send()
    sent = sent_header_blocks(wire)
    resp = Response()
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(wire)
        done = False
        while not done:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no complete response to {path} within {timeout}s: {resp.describe()}")
            sock.settimeout(left)
            chunk = sock.recv(65536)
            if not chunk:
                break
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream_id:
                    resp.headers = list(event.headers)
                    resp.status = int(dict(resp.headers)[b":status"])
                    resp.trailers_only = event.stream_ended is not None
                elif isinstance(event, h2.events.DataReceived) and event.stream_id == stream_id:
                    resp.data += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
                elif isinstance(event, h2.events.TrailersReceived) and event.stream_id == stream_id:
                    resp.trailers = list(event.headers)
                elif isinstance(event, h2.events.StreamEnded) and event.stream_id == stream_id:
                    done = True
                elif isinstance(event, h2.events.StreamReset) and event.stream_id == stream_id:
                    resp.reset = int(event.error_code)
                    done = True
                elif isinstance(event, h2.events.ConnectionTerminated):
                    resp.goaway = int(event.error_code)
                    done = True
            out = conn.data_to_send()
            if out:
                sock.sendall(out)
    return resp, (sent[0] if sent else [])
