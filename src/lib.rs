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
//! - [`codec`]: snappy and AES-256-GCM, chained; [`keys`]: key policies,
//!   envelope encryption with KMS-wrapped data keys, reload;
//! - [`config`]: the TOML configuration.

#![forbid(unsafe_code)]

pub mod admin;
pub(crate) mod auth;
pub mod codec;
pub mod codec_server;
pub mod config;
pub mod errors;
pub mod grpc;
mod http1;
pub mod inbound;
pub mod keys;
pub mod proxy;
pub mod reload;
pub mod rewrite;
pub mod schema;
pub(crate) mod shard;
pub mod telemetry;
pub(crate) mod tls;
pub mod translate;
pub mod upstream;
pub(crate) mod wire;

use std::{future::Future, sync::Arc};

use thiserror::Error;

/// Why the gateway could not be assembled from a configuration.
#[derive(Debug, Error)]
pub enum AppError {
    #[error("Temporal descriptor set: {0}")]
    Schema(#[from] schema::SchemaError),
    #[error("codec: {0}")]
    Keys(#[from] keys::policy::PolicyError),
    #[error("upstream TLS: {0}")]
    Tls(#[from] upstream::TlsError),
    #[error(transparent)]
    Route(#[from] proxy::router::RouteError),
    #[error("inbound TLS: {0}")]
    Inbound(String),
    #[error("{0}")]
    Proxy(String),
    #[error(transparent)]
    CodecServer(#[from] codec_server::CodecServerError),
    #[error(transparent)]
    Telemetry(#[from] telemetry::TelemetryError),
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
    telemetry: Arc<telemetry::Telemetry>,
    codec_server: Option<Arc<codec_server::CodecServer>>,
    config: config::Config,
}

/// The bound sockets: the gRPC listener and, when configured, the codec server's.
#[derive(Debug)]
pub struct Listeners {
    pub proxy: tokio::net::TcpListener,
    pub codec_server: Option<tokio::net::TcpListener>,
    pub admin: Option<tokio::net::TcpListener>,
}

impl App {
    /// Builds the schema plan, codec chain and upstream pool. Nothing is
    /// dialled yet: an upstream that is down now is retried per call.
    pub fn new(config: config::Config) -> Result<App, AppError> {
        let telemetry = Arc::new(telemetry::Telemetry::new(&config.telemetry)?);
        App::with_telemetry(config, telemetry)
    }

    /// Like [`App::new`], with metrics set up by the caller (`sealgate run`
    /// builds them inside its runtime, next to the trace pipeline).
    pub fn with_telemetry(
        config: config::Config,
        telemetry: Arc<telemetry::Telemetry>,
    ) -> Result<App, AppError> {
        let descriptors = schema::Descriptors::from_config(config.proxy.descriptor_set.as_deref())?;
        let schema = Arc::new(descriptors.payloads(&config.proxy.plaintext_paths)?);
        let pipeline = Arc::new(config.codec.pipeline()?);
        // Upstream pools get a share per serving thread.
        let shards = match config.proxy.runtime {
            config::Runtime::PerCore => config.proxy.threads,
            config::Runtime::WorkStealing => 1,
        };
        let upstream = Arc::new(upstream::Upstream::new(
            &config.upstream,
            &config.upstream_options,
            shards,
        )?);
        let codec_server = match &config.codec_server {
            Some(c) => Some(Arc::new(codec_server::CodecServer::new(
                c,
                pipeline.clone(),
                config.translations(),
            )?)),
            None => None,
        };
        telemetry.observe_codec(&pipeline);
        let info = descriptors.info();
        telemetry.observe_schema(&info.source, &info.api, &info.digest);
        telemetry.observe_upstream(upstream.clone());
        let router =
            proxy::router::Router::new(upstream.clone(), &config.upstreams, &config.routing)?;
        let inbound = inbound::Inbound::new(config.inbound.clone());
        inbound.acceptor().map_err(AppError::Inbound)?;
        let proxy = Arc::new(
            proxy::Proxy::new(
                (schema, descriptors),
                pipeline,
                (router, inbound),
                config.proxy.clone(),
                telemetry.metrics.clone(),
                config.telemetry.otlp_endpoint.is_some(),
            )
            .map_err(AppError::Proxy)?,
        );
        let budget = std::sync::Arc::downgrade(&proxy);
        telemetry.observe_buffered(move || budget.upgrade().map_or((0, 0), |p| p.buffered()));
        Ok(App {
            proxy,
            telemetry,
            codec_server,
            config,
        })
    }

    pub fn proxy(&self) -> &Arc<proxy::Proxy> {
        &self.proxy
    }

    pub fn config(&self) -> &config::Config {
        &self.config
    }

    pub fn codec_server(&self) -> Option<&Arc<codec_server::CodecServer>> {
        self.codec_server.as_ref()
    }

    pub fn telemetry(&self) -> &Arc<telemetry::Telemetry> {
        &self.telemetry
    }

    /// Reloads keys and TLS material from `path` (the file this
    /// configuration came from).
    pub fn reloader(&self, path: &std::path::Path) -> Arc<reload::Reloader> {
        Arc::new(
            reload::Reloader::new(
                path,
                self.config.clone(),
                self.proxy.codec().clone(),
                self.proxy.upstream().clone(),
                self.codec_server.clone(),
            )
            .with_listener(self.proxy.clone()),
        )
    }

    /// Binds the configured listen addresses.
    pub async fn bind(&self) -> Result<Listeners, AppError> {
        let bind = |addr| async move {
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| AppError::Listen { addr, source })
        };
        let proxy = bind(self.config.listen).await?;
        let codec_server = match &self.config.codec_server {
            Some(c) => Some(bind(c.listen).await?),
            None => None,
        };
        let admin = match self.config.telemetry.admin_listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        Ok(Listeners {
            proxy,
            codec_server,
            admin,
        })
    }

    /// Serves until `shutdown`, then drains the proxy for the configured grace.
    pub async fn serve(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()>,
    ) -> proxy::server::Drained {
        let grace = self.config.proxy.shutdown_grace;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let wait = proxy::server::stopped;
        let codec = match (self.codec_server, listeners.codec_server) {
            (Some(server), Some(listener)) => Some(tokio::spawn(codec_server::serve(
                listener,
                server,
                wait(stopped.clone()),
            ))),
            _ => None,
        };
        let admin = listeners.admin.map(|listener| {
            let admin = Arc::new(admin::Admin {
                telemetry: self.telemetry.clone(),
                upstream: self.proxy.upstream().clone(),
            });
            tokio::spawn(admin::serve(listener, admin, wait(stopped.clone())))
        });
        let signal = async move {
            shutdown.await;
            let _ = stop.send(true);
        };
        // Serving ends only after the signal, so both finish.
        let serve = async {
            match self.config.proxy.runtime {
                config::Runtime::PerCore => {
                    proxy::shards::serve(
                        listeners.proxy,
                        self.proxy,
                        self.config.proxy.threads,
                        stopped.clone(),
                        grace,
                    )
                    .await
                }
                config::Runtime::WorkStealing => {
                    proxy::server::serve(listeners.proxy, self.proxy, wait(stopped.clone()), grace)
                        .await
                }
            }
        };
        let (drained, ()) = tokio::join!(serve, signal);
        for task in [codec, admin].into_iter().flatten() {
            let _ = task.await;
        }
        self.telemetry.shutdown();
        drained
    }
}
