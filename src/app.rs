//! The composition root: [`App::build`] turns a [`Config`] into a running
//! gateway, and [`Running::prepare`] builds each later generation of it for
//! a reload. Nothing else constructs runtime parts from configuration.
//!
//! Why: docs/design.md#generations.

pub mod reload;

use std::{future::Future, sync::Arc};

use thiserror::Error;
use tokio_rustls::TlsAcceptor;

use crate::{
    admin, codec, codec_server,
    config::{self, Config},
    inbound, keys, proxy, schema, telemetry, upstream,
};

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
    /// Builds the whole gateway from `config`: metrics, the schema plan,
    /// the codec chain and key policies, every upstream pool, the routes,
    /// the caller rules and the listeners' TLS. Nothing is dialled yet: an
    /// upstream that is down now is retried per call. Call it inside the
    /// Tokio runtime that will serve.
    pub fn build(config: Config) -> Result<App, AppError> {
        let telemetry = Arc::new(telemetry::Telemetry::new(&config.telemetry)?);
        let descriptors = schema::Descriptors::from_config(config.proxy.descriptor_set.as_deref())?;
        let schema = Arc::new(descriptors.payloads(&config.proxy.plaintext_paths)?);
        let store = config
            .external_storage
            .clone()
            .map(|s| Arc::new(crate::storage::Store::new(s)));
        let pipeline = Arc::new(pipeline(&config.codec)?.with_store(store));
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
        let acceptor = inbound.acceptor().map_err(AppError::Inbound)?;
        let proxy = Arc::new(
            proxy::Proxy::new(
                (schema, descriptors),
                pipeline,
                (router, inbound, acceptor),
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
            // `config` (and the key material in it) is dropped here.
            config: config.without_secrets(),
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

    /// Reloads the whole generation from `path` (the file this
    /// configuration came from); its outcomes are counted in the metrics.
    pub fn reloader(&self, path: &std::path::Path) -> Arc<reload::Reloader> {
        let reloader = Arc::new(reload::Reloader::new(
            path,
            &self.config,
            Running {
                codec: self.proxy.codec().clone(),
                upstream: self.proxy.upstream().clone(),
                codec_server: self.codec_server.clone(),
                listener: Some(self.proxy.clone()),
            },
        ));
        let stats = Arc::downgrade(&reloader);
        self.telemetry.observe_reloads(move || {
            use std::sync::atomic::Ordering::Relaxed;
            stats.upgrade().map_or((0, 0), |r| {
                (r.stats().ok.load(Relaxed), r.stats().failed.load(Relaxed))
            })
        });
        reloader
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
        let delay = self.config.proxy.shutdown_delay;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        // The admin listener outlives the drain: /ready says 503 throughout.
        let (admin_stop, admin_stopped) = tokio::sync::watch::channel(false);
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
                proxy: self.proxy.clone(),
            });
            tokio::spawn(admin::serve(listener, admin, wait(admin_stopped)))
        });
        let draining = self.proxy.clone();
        let signal = async move {
            shutdown.await;
            // Say so first (health NOT_SERVING, /ready 503) while still
            // serving, then stop accepting and drain.
            draining.start_draining();
            if !delay.is_zero() {
                tracing::info!(delay = ?delay, "shutting down: reporting NOT_SERVING before the drain");
                tokio::time::sleep(delay).await;
            }
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
        let _ = admin_stop.send(true);
        for task in [codec, admin].into_iter().flatten() {
            let _ = task.await;
        }
        self.telemetry.shutdown();
        drained
    }
}

/// A fresh codec pipeline (chain, key policies, data-key cache) from the
/// `[codec]` settings: the gateway's, and the CLI's `encode` and `decode`.
pub fn pipeline(c: &codec::CodecConfig) -> Result<codec::Pipeline, keys::policy::PolicyError> {
    let ops = Arc::new(keys::KeyOpsRegistry::default());
    let setup = c.setup(Arc::default(), &ops, None)?;
    let deks = Arc::new(keys::envelope::DekStore::new(c.dek_cache_size, ops.clone()));
    Ok(codec::Pipeline::new(setup, deks, ops))
}

/// The running parts a reload replaces pieces of.
pub(crate) struct Running {
    pub(crate) codec: Arc<codec::Pipeline>,
    pub(crate) upstream: Arc<upstream::Upstream>,
    pub(crate) codec_server: Option<Arc<codec_server::CodecServer>>,
    /// The gRPC listener: its TLS, caller rules and router.
    pub(crate) listener: Option<Arc<proxy::Proxy>>,
}

/// A generation built from a new configuration and not yet in use.
pub(crate) struct Generation {
    setup: codec::Setup,
    credentials: upstream::Credentials,
    codec_server: Option<codec_server::Reloaded>,
    listener: Option<ListenerGeneration>,
}

struct ListenerGeneration {
    inbound: (inbound::Inbound, Option<TlsAcceptor>),
    router: proxy::router::Router,
    named: proxy::router::KeptCredentials,
}

impl Running {
    /// Builds the whole next generation from `config`: key policies and
    /// KMS providers, every upstream's credentials (named ones too), the
    /// routes, the caller rules and the listeners' certificates. Any
    /// failure leaves everything running as it is.
    pub(crate) fn prepare(&self, config: &Config) -> Result<Generation, String> {
        let current = self.codec.current();
        let setup = config
            .codec
            .setup(
                self.codec.stats(),
                self.codec.ops(),
                Some(&current.policies),
            )
            .map_err(|e| format!("[codec]: {e}"))?;
        let credentials = upstream::Credentials::load(&config.upstream, &config.upstream_options)
            .map_err(|e| format!("upstream TLS: {e}"))?;
        let codec_server = match (&self.codec_server, &config.codec_server) {
            (Some(server), Some(cs)) => Some(server.prepare(cs).map_err(|e| e.to_string())?),
            _ => None,
        };
        let listener = match &self.listener {
            Some(p) => {
                let inbound = inbound::Inbound::new(config.inbound.clone());
                let acceptor = inbound.acceptor().map_err(|e| format!("[inbound]: {e}"))?;
                if acceptor.is_some() != p.listener_tls() {
                    return Err("[inbound]: turning listener TLS on or off needs a restart".into());
                }
                let (router, named) = proxy::router::Router::rebuild(
                    Some(&p.router()),
                    self.upstream.clone(),
                    &config.upstreams,
                    &config.routing,
                )
                .map_err(|e| format!("[upstreams] and [[routes]]: {e}"))?;
                Some(ListenerGeneration {
                    inbound: (inbound, acceptor),
                    router,
                    named,
                })
            }
            None => None,
        };
        Ok(Generation {
            setup,
            credentials,
            codec_server,
            listener,
        })
    }

    /// Puts `next` in force. Calls in flight keep what they took.
    pub(crate) fn publish(&self, next: Generation) {
        self.codec.publish(next.setup);
        self.upstream.set_credentials(next.credentials);
        if let (Some(server), Some(next)) = (&self.codec_server, next.codec_server) {
            server.publish(next);
        }
        if let (Some(p), Some(l)) = (&self.listener, next.listener) {
            for (upstream, c) in l.named {
                upstream.set_credentials(c);
            }
            p.publish_router(l.router);
            p.publish_inbound(l.inbound);
        }
    }
}
