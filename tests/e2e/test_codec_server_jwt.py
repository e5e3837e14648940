"""The Codec Server with RS256 JWTs: an RSA key made now, its JWKS served by
this test, tokens signed here (what most identity providers issue)."""

from __future__ import annotations

import base64
import http.server
import json
import threading
import time
import urllib.error
import urllib.request

import harness
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

PLAIN = {"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "InNlY3JldCI="}]}


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def uint(n: int) -> str:
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def jwt(key, kid: str, claims: dict) -> str:
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": kid}).encode())
    body = b64url(json.dumps(claims).encode())
    sig = key.sign(f"{header}.{body}".encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{body}.{b64url(sig)}"


def serve_jwks(jwks: dict) -> tuple[http.server.HTTPServer, int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = json.dumps(jwks).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def post(url: str, token: str | None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(PLAIN).encode(), method="POST")
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_rs256_tokens_with_a_decode_only_rule(workdir, temporal):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = key.public_key().public_numbers()
    jwks = {"keys": [{"kty": "RSA", "kid": "rsa-1", "alg": "RS256", "use": "sig", "n": uint(pub.n), "e": uint(pub.e)}]}
    server, port = serve_jwks(jwks)
    codec_port = harness.free_port()
    d = workdir / "codec-jwt"
    config = harness.sealgate_config(
        d,
        "[codec_server]\n[codec_server.auth]\nmode = \"jwt\"\n"
        f'jwks_url = "http://127.0.0.1:{port}/jwks.json"\nissuer = "https://idp.test"\naudience = "sealgate"\n'
        'decode_requires = "scope=codec:decode"\nencode_requires = "scope=codec:encode"\n'
        + harness.generated_codec_section(),
    )
    gate = harness.start_sealgate(d, config, upstream=f"http://{temporal.address}", codec_port=codec_port)
    try:
        base = f"http://127.0.0.1:{codec_port}"
        claims = {"iss": "https://idp.test", "aud": "sealgate", "exp": int(time.time()) + 300, "scope": "openid codec:decode"}
        token = jwt(key, "rsa-1", claims)
        status, body = post(f"{base}/decode", token)
        assert status == 200, body
        assert body == PLAIN
        status, body = post(f"{base}/default/encode", token)
        assert status == 403 and "codec:encode" in body["error"], body
        status, body = post(f"{base}/decode", None)
        assert status == 401, body
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        status, body = post(f"{base}/decode", jwt(other, "rsa-1", claims))
        assert status == 401 and "rejected" in body["error"], body
    finally:
        assert gate.proc.stop() == 0
        server.shutdown()
