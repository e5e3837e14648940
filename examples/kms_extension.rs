//! A runnable key service for sealgate's `extension` KEK provider
//! (`proto/sealgate/kms/v1/kms.proto`): the shape to copy when plugging in an
//! HSM or an internal key service.
//!
//! ```text
//! cargo run --example kms_extension -- --listen 127.0.0.1:50051 \
//!     --key hsm-key-1=$(openssl rand -base64 32)
//! ```
//!
//! Each `--key ID=BASE64` is a 32-byte key-encryption key; Wrap seals a data
//! key with AES-256-GCM under it (`nonce ‖ ciphertext ‖ tag`), the key id and
//! the namespace as associated data, and Unwrap opens it only for the same
//! key id and namespace: a payload copied into another namespace's history
//! does not decrypt there. A real service would call its HSM here instead
//! (binding the namespace the same way, e.g. as its encryption context). It prints its address
//! once listening, and one line per call (never key material).

use std::{collections::HashMap, net::SocketAddr};

use base64::{Engine, engine::general_purpose::STANDARD};
use ring::{
    aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey},
    rand::{SecureRandom, SystemRandom},
};
use sealgate::keys::kms::proto::{
    UnwrapRequest, UnwrapResponse, WrapRequest, WrapResponse,
    key_service_server::{KeyService, KeyServiceServer},
};
use tonic::{Request, Response, Status, transport::server::TcpIncoming};

struct Service {
    keys: HashMap<String, LessSafeKey>,
    rng: SystemRandom,
}

/// `key_id ‖ 0 ‖ namespace`: what a wrapped data key is bound to.
fn binding(key_id: &str, namespace: &str) -> Vec<u8> {
    [key_id.as_bytes(), &[0], namespace.as_bytes()].concat()
}

impl Service {
    fn key(&self, id: &str) -> Result<&LessSafeKey, Status> {
        self.keys
            .get(id)
            .ok_or_else(|| Status::not_found(format!("no key {id:?} in this key service")))
    }
}

#[tonic::async_trait]
impl KeyService for Service {
    async fn wrap(&self, req: Request<WrapRequest>) -> Result<Response<WrapResponse>, Status> {
        let req = req.into_inner();
        let key = self.key(&req.key_id)?;
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| Status::internal("random generator failed"))?;
        let mut sealed = req.plaintext;
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(binding(&req.key_id, &req.namespace)),
            &mut sealed,
        )
        .map_err(|_| Status::internal("seal failed"))?;
        let mut ciphertext = nonce.to_vec();
        ciphertext.extend_from_slice(&sealed);
        println!("wrap key_id={} namespace={}", req.key_id, req.namespace);
        Ok(Response::new(WrapResponse { ciphertext }))
    }

    async fn unwrap(
        &self,
        req: Request<UnwrapRequest>,
    ) -> Result<Response<UnwrapResponse>, Status> {
        let req = req.into_inner();
        let key = self.key(&req.key_id)?;
        if req.ciphertext.len() < NONCE_LEN {
            return Err(Status::invalid_argument("ciphertext too short"));
        }
        let (nonce, sealed) = req.ciphertext.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce)
            .map_err(|_| Status::invalid_argument("bad nonce"))?;
        let mut buf = sealed.to_vec();
        let plain = key
            .open_in_place(
                nonce,
                Aad::from(binding(&req.key_id, &req.namespace)),
                &mut buf,
            )
            .map_err(|_| {
                Status::invalid_argument(
                    "ciphertext does not authenticate (another key, or another namespace)",
                )
            })?;
        let plaintext = plain.to_vec();
        println!("unwrap key_id={} namespace={}", req.key_id, req.namespace);
        Ok(Response::new(UnwrapResponse { plaintext }))
    }
}

fn usage() -> ! {
    eprintln!("usage: kms_extension --listen HOST:PORT --key ID=BASE64 [--key ID=BASE64 ...]");
    std::process::exit(64)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut listen: SocketAddr = "127.0.0.1:50051".parse().unwrap_or_else(|_| usage());
    let mut keys = HashMap::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match (a.as_str(), it.next()) {
            ("--listen", Some(v)) => listen = v.parse().unwrap_or_else(|_| usage()),
            ("--key", Some(v)) => {
                let Some((id, b64)) = v.split_once('=') else {
                    usage()
                };
                let material = STANDARD.decode(b64).unwrap_or_else(|_| usage());
                let key = UnboundKey::new(&AES_256_GCM, &material).unwrap_or_else(|_| usage());
                keys.insert(id.to_string(), LessSafeKey::new(key));
            }
            _ => usage(),
        }
    }
    if keys.is_empty() {
        usage();
    }
    let incoming = TcpIncoming::bind(listen).unwrap_or_else(|e| {
        eprintln!("kms_extension: cannot listen on {listen}: {e}");
        std::process::exit(1)
    });
    match incoming.local_addr() {
        Ok(addr) => println!("listening on {addr}"),
        Err(e) => eprintln!("kms_extension: {e}"),
    }
    let service = Service {
        keys,
        rng: SystemRandom::new(),
    };
    if let Err(e) = tonic::transport::Server::builder()
        .add_service(KeyServiceServer::new(service))
        .serve_with_incoming(incoming)
        .await
    {
        eprintln!("kms_extension: {e}");
        std::process::exit(1);
    }
}
