//! CORS for the browsers that call the codec server (the Web UI).

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};

use super::{Resp, error};

/// Allowed origins; `*` allows any (never with credentials).
#[derive(Debug, Clone)]
pub struct Cors {
    origins: Vec<String>,
    any: bool,
    credentials: bool,
}

/// `Authorization-Extras` carries the ID token the Web UI sends along.
const ALLOW_HEADERS: &str = "Content-Type, X-Namespace, Authorization, Authorization-Extras";
const ALLOW_METHODS: &str = "POST, OPTIONS";

impl Cors {
    pub fn new(origins: &[String], credentials: bool) -> Cors {
        Cors {
            origins: origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_string())
                .collect(),
            any: origins.iter().any(|o| o == "*"),
            credentials,
        }
    }

    /// The `Access-Control-Allow-Origin` value for a request's `Origin`.
    fn allow(&self, origin: Option<&HeaderValue>) -> Option<HeaderValue> {
        let origin = origin?;
        let text = origin.to_str().ok()?;
        if self.origins.iter().any(|o| o == text) {
            Some(origin.clone())
        } else if self.any {
            Some(HeaderValue::from_static("*"))
        } else {
            None
        }
    }

    /// Adds the CORS headers an allowed origin gets on every response.
    pub fn decorate(&self, origin: Option<&HeaderValue>, headers: &mut HeaderMap) {
        let Some(allow) = self.allow(origin) else {
            return;
        };
        let explicit = allow != "*";
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow);
        headers.insert(header::VARY, HeaderValue::from_static("Origin"));
        if self.credentials && explicit {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
    }

    /// Answers a preflight `OPTIONS`.
    pub fn preflight(&self, origin: Option<&HeaderValue>) -> Resp {
        if self.allow(origin).is_none() {
            let shown = origin.and_then(|o| o.to_str().ok()).unwrap_or("(none)");
            return error(
                StatusCode::FORBIDDEN,
                format!("origin {shown} is not allowed (codec_server.cors_origins)"),
            );
        }
        let mut r = Response::new(Default::default());
        *r.status_mut() = StatusCode::NO_CONTENT;
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOW_METHODS),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        r
    }
}
