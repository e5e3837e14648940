//! Temporal's client config file (temporal.toml): TOML, profiles, TLS
//! paths and data, grpc_meta, as sealgate reads a profile of it.
//!
//! Input: the file text (lossy UTF-8). Properties: nothing panics; every
//! problem has a place and a message.

pub(crate) fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for profile in ["default", "prod"] {
        for (at, what) in sealgate::config::check_temporal_profile(&text, profile) {
            assert!(
                !at.is_empty() && !what.trim().is_empty(),
                "{at:?}: {what:?}"
            );
        }
    }
}
