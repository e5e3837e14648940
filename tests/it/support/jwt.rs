//! Test JWTs: ES256 keys made at test time (rcgen), a JWKS served over
//! HTTP that a test can swap, and token signing.
#![allow(dead_code)]

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// A JWKS server whose key set the test can swap.
pub async fn jwks_server(keys: Arc<Mutex<Value>>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let keys = keys.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let body = keys.lock().unwrap().to_string();
                    async move {
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from(body),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

pub struct Signer {
    pub kid: String,
    pub key: jsonwebtoken::EncodingKey,
    pub jwk: Value,
}

pub fn signer(kid: &str) -> Signer {
    let kp = rcgen::KeyPair::generate().unwrap(); // ECDSA P-256
    let raw = kp.public_key_raw(); // 0x04 ‖ X ‖ Y
    let jwk = json!({
        "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
        "x": URL_SAFE_NO_PAD.encode(&raw[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&raw[33..65]),
    });
    Signer {
        kid: kid.into(),
        key: jsonwebtoken::EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).unwrap(),
        jwk,
    }
}

pub fn token(s: &Signer, claims: Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some(s.kid.clone());
    jsonwebtoken::encode(&header, &claims, &s.key).unwrap()
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
