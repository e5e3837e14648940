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
pub mod keys;
pub mod rewrite;
pub mod schema;
