//! The configuration: TOML, `${VAR}` expansion, every section's keys and
//! the checks across them.
//!
//! Input: the config text (lossy UTF-8). `${VAR}`s resolve from a fixed
//! table; file paths resolve under a directory that does not exist, so no
//! file is read. Properties: nothing panics; a config that fails names at
//! least one problem, each with a message; the key material in the fixed
//! table never appears in an error.

use std::path::Path;

use sealgate::config::Config;

const SECRET: &str = "c2VhbGdhdGUtZnV6ei1rZXktbWF0ZXJpYWwtMzJieXQ=";

fn env(name: &str) -> Option<String> {
    match name {
        "KEY" => Some(SECRET.into()),
        "PORT" => Some("7233".into()),
        "HOST" => Some("127.0.0.1".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

pub(crate) fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match Config::parse(
        &text,
        "fuzz.toml",
        Path::new("/nonexistent/sealgate-fuzz"),
        &env,
    ) {
        Ok(_) => {}
        Err(e) => {
            let msg = e.to_string();
            assert!(!msg.trim().is_empty(), "an error says something");
            assert!(!msg.contains(SECRET), "key material in an error: {msg}");
        }
    }
}
