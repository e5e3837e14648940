"""The Temporal Python sample's encryption codec, driven over stdin/stdout.

Implements a temporalio PayloadCodec the way Temporal's Python encryption
sample does: AESGCM from `cryptography`, a random 12-byte nonce prepended to
ciphertext+tag, no associated data, metadata `encoding: binary/encrypted` and
`encryption-key-id`, over the whole serialized Payload.

stdin:  {"key": b64, "key_id": str, "encode": [b64 Payload], "decode": [b64 Payload]}
stdout: {"encoded": [b64 Payload], "decoded": [b64 Payload]}
"""

import asyncio
import base64
import json
import os
import sys
from typing import Iterable, List

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec


class SampleEncryptionCodec(PayloadCodec):
    def __init__(self, key_id: str, key: bytes) -> None:
        super().__init__()
        self.key_id = key_id
        self.aead = AESGCM(key)

    async def encode(self, payloads: Iterable[Payload]) -> List[Payload]:
        out = []
        for p in payloads:
            nonce = os.urandom(12)
            out.append(
                Payload(
                    metadata={
                        "encoding": b"binary/encrypted",
                        "encryption-key-id": self.key_id.encode(),
                    },
                    data=nonce + self.aead.encrypt(nonce, p.SerializeToString(), None),
                )
            )
        return out

    async def decode(self, payloads: Iterable[Payload]) -> List[Payload]:
        out = []
        for p in payloads:
            if p.metadata.get("encoding", b"").decode() != "binary/encrypted":
                out.append(p)
                continue
            key_id = p.metadata.get("encryption-key-id", b"").decode()
            if key_id != self.key_id:
                raise ValueError(f"unrecognized key id {key_id!r}")
            plain = self.aead.decrypt(p.data[:12], p.data[12:], None)
            out.append(Payload.FromString(plain))
        return out


async def main() -> None:
    req = json.load(sys.stdin)
    codec = SampleEncryptionCodec(req["key_id"], base64.b64decode(req["key"]))
    parse = lambda items: [Payload.FromString(base64.b64decode(s)) for s in items]
    show = lambda ps: [base64.b64encode(p.SerializeToString()).decode() for p in ps]
    json.dump(
        {
            "encoded": show(await codec.encode(parse(req["encode"]))),
            "decoded": show(await codec.decode(parse(req["decode"]))),
        },
        sys.stdout,
    )


asyncio.run(main())
