//! sealgate: an egress gateway that keeps Temporal payloads private.
//!
//! Workers and clients talk gRPC to sealgate as if it were their Temporal
//! frontend; sealgate finds every `temporal.api.common.v1.Payload` in each
//! WorkflowService message (guided by the Temporal API descriptor set),
//! encodes it on the way out and decodes it on the way back.
//!
//! The pieces, in the order data flows through them:
//! - [`schema`]: descriptor set → plan of the fields that lead to payloads;
//! - [`rewrite`]: wire-level walker that applies a codec along the plan;
//! - [`codec`]: snappy and AES-256-GCM, chained; [`keys`]: the keyring;
//! - [`config`]: the TOML configuration.

#![forbid(unsafe_code)]

pub mod codec;
pub mod config;
pub mod grpc;
pub mod keys;
pub mod proxy;
pub mod rewrite;
pub mod schema;
pub mod upstream;

use std::{future::Future, sync::Arc};

use thiserror::Error;

/// Why the gateway could not be assembled from a configuration.
#[derive(Debug, Error)]
pub enum AppError {
    #[error("Temporal descriptor set: {0}")]
    Schema(#[from] schema::SchemaError),
    #[error("codec: {0}")]
    Codec(#[from] config::ChainError),
    #[error("upstream TLS: {0}")]
    Tls(#[from] upstream::TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
}

/// The assembled gateway: shared by `sealgate run` and the tests.
#[derive(Debug)]
pub struct App {
    proxy: Arc<proxy::Proxy>,
    config: config::Config,
}

impl App {
    /// Builds the schema plan, codec chain and upstream pool. Nothing is
    /// dialled yet: an upstream that is down now is retried per call.
    pub fn new(config: config::Config) -> Result<App, AppError> {
        let schema = Arc::new(schema::Schema::embedded()?);
        let chain = Arc::new(config.codec.chain()?);
        let upstream = Arc::new(upstream::Upstream::new(config.upstream_settings())?);
        let proxy = Arc::new(proxy::Proxy::new(
            schema,
            chain,
            upstream,
            config.proxy.clone(),
        ));
        Ok(App { proxy, config })
    }

    pub fn proxy(&self) -> &Arc<proxy::Proxy> {
        &self.proxy
    }

    pub fn config(&self) -> &config::Config {
        &self.config
    }

    /// Binds the configured listen address.
    pub async fn bind(&self) -> Result<tokio::net::TcpListener, AppError> {
        let addr = self.config.listen;
        tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| AppError::Listen { addr, source })
    }

    /// Serves on `listener` until `shutdown`, then drains for the configured grace.
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> proxy::server::Drained {
        let grace = self.config.proxy.shutdown_grace;
        proxy::server::serve(listener, self.proxy, shutdown, grace).await
    }
}
