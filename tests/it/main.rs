//! The integration tests, as one test binary: one link instead of one per
//! file keeps a clean build's target dir and link time small. Each module
//! is one area (`cargo nextest run -E 'test(/^keys::/)'` runs one).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod cli;
mod codec_server;
mod connections;
mod default_deny;
mod fuzz_corpus;
mod inbound;
mod interop_python;
mod keys;
mod memory;
mod observability;
mod plan_coverage;
mod properties;
mod proxy;
mod reflection;
mod routing;
mod upstream_tls;
