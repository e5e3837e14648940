"""Payloads in Temporal Proxy's envelope format, built independently.

Temporal Proxy (github.com/temporalio/temporal-proxy) seals each payload as:
a random 32-byte data key (DEK) per namespace; data = nonce(12) ||
AES-256-GCM(DEK, marshaled Payload, no AAD) || tag; the DEK wrapped by the
namespace's KEK; metadata `encoding: binary/encrypted`, `encryption-key-id`
= the KEK's URI, `encryption-dek` = base64 of the wrapped DEK. Its local KEK
(gocloud.dev `base64key://<base64 key>`) wraps with NaCl secretbox:
nonce(24) || MAC(16) || ciphertext, which PyNaCl's SecretBox produces.

stdin:  {"kek": b64 32-byte key, "payloads": [b64 Payload]}
stdout: {"kek_id": "base64key://...", "sealed": [b64 Payload]}
"""

import base64
import json
import os
import sys

import nacl.secret
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload


def main() -> None:
    req = json.load(sys.stdin)
    kek = base64.b64decode(req["kek"])
    kek_id = "base64key://" + base64.b64encode(kek).decode()
    dek = os.urandom(32)
    wrapped = bytes(nacl.secret.SecretBox(kek).encrypt(dek))
    sealed = []
    for b64 in req["payloads"]:
        plain = base64.b64decode(b64)
        nonce = os.urandom(12)
        p = Payload(
            metadata={
                "encoding": b"binary/encrypted",
                "encryption-key-id": kek_id.encode(),
                "encryption-dek": base64.b64encode(wrapped),
            },
            data=nonce + AESGCM(dek).encrypt(nonce, plain, None),
        )
        sealed.append(base64.b64encode(p.SerializeToString()).decode())
    json.dump({"kek_id": kek_id, "sealed": sealed}, sys.stdout)


if __name__ == "__main__":
    main()
