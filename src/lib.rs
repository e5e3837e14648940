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
//! - [`config`]: the TOML configuration, parsed into each component's
//!   plain-data settings;
//! - [`App`]: the one place that builds the gateway from a configuration,
//!   and builds each new generation on reload ([`reload`]).

#![forbid(unsafe_code)]

pub mod admin;
mod app;
pub(crate) mod auth;
pub(crate) mod aws;
pub mod codec;
pub mod codec_server;
pub mod config;
pub mod errors;
pub mod grpc;
mod http1;
pub mod inbound;
pub mod keys;
pub mod proxy;
mod read_ahead;
pub mod rewrite;
pub mod schema;
pub(crate) mod serve;
pub(crate) mod shard;
pub mod storage;
pub mod telemetry;
pub(crate) mod tls;
pub mod translate;
pub mod upstream;
pub(crate) mod wire;
mod write_batch;

pub use app::{App, AppError, Listeners, pipeline, reload};
