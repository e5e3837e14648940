//! Classification: from a request's path alone, before its body is read,
//! which lane a call takes. There is no lane that streams a service whose
//! messages the schema shows can carry payloads or namespaces.
//!
//! Why: docs/design.md#default-deny.

use super::ProxyConfig;
use super::{ProxyError, reflection};
use crate::schema::{Method, Schema};

/// How a service's calls are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceClass {
    /// Its messages can reach a payload or a namespace: every call is
    /// buffered, authorized, rewritten and forwarded, or refused.
    Rewrite,
    /// The schema shows it carries neither (health): it may stream.
    Plain,
    /// Not in the schema, and the operator listed it in
    /// `proxy.opaque_services`: it streams unread.
    Opaque,
}

/// The lane of one call.
#[derive(Debug)]
pub enum Class<'a> {
    /// Answered here: server reflection (v1 or v1alpha).
    Reflection(&'static str),
    /// Buffered and rewritten.
    Rewrite(&'a Method),
    /// Streamed; `opaque` when the schema does not know the service.
    Stream { opaque: bool },
}

/// The class of every service this gateway serves, fixed at start.
#[derive(Debug, Default)]
pub struct Services {
    /// A handful of services: a scan beats hashing a 50-byte name.
    classes: Vec<(Box<str>, ServiceClass)>,
    /// How messages name the schema in use.
    schema: String,
}

/// A configured service the gateway cannot classify.
#[derive(Debug, thiserror::Error)]
#[error("proxy: service {service:?} {reason}")]
pub struct UnknownService {
    pub service: String,
    pub reason: &'static str,
}

const NOT_IN_SCHEMA: &str = concat!(
    "in proxy.allowed_services is not in the Temporal API schema (",
    env!("SEALGATE_TEMPORAL_API"),
    "), so sealgate cannot tell whether it carries payloads; list it in proxy.opaque_services too to stream it unread anyway"
);

impl Services {
    /// Classifies the configured services against the payload plan and the
    /// namespace plan.
    pub fn new(
        config: &ProxyConfig,
        payloads: &Schema,
        namespaces: &Schema,
    ) -> Result<Services, UnknownService> {
        // What the schema says of a service it defines.
        let schema_class = |s: &str| {
            if payloads.service_reaches(s) || namespaces.service_reaches(s) {
                Some(ServiceClass::Rewrite)
            } else if payloads.defines_service(s) {
                Some(ServiceClass::Plain)
            } else {
                None
            }
        };
        let mut classes: Vec<(Box<str>, ServiceClass)> = Vec::new();
        for s in &config.allowed_services {
            let class = match schema_class(s) {
                Some(class) => class,
                // Not in the schema: opaque if the operator says so.
                None if config.opaque_services.contains(s) => {
                    tracing::warn!(
                        service = %s,
                        "proxy.opaque_services: this service streams through unread; sealgate cannot see payloads or namespaces in it"
                    );
                    ServiceClass::Opaque
                }
                None => {
                    return Err(UnknownService {
                        service: s.clone(),
                        reason: NOT_IN_SCHEMA,
                    });
                }
            };
            classes.push((s.as_str().into(), class));
        }
        // A service the schema knows is classified by it, listed opaque or
        // not; an opaque one must be allowed too.
        if let Some(s) = config
            .opaque_services
            .iter()
            .find(|s| !config.allowed_services.contains(s))
        {
            return Err(UnknownService {
                service: s.clone(),
                reason: "is in proxy.opaque_services but not in proxy.allowed_services; list it in both to serve it",
            });
        }
        Ok(Services {
            classes,
            schema: payloads.info().label(),
        })
    }

    pub fn class(&self, service: &str) -> Option<ServiceClass> {
        self.classes
            .iter()
            .find(|(name, _)| **name == *service)
            .map(|(_, class)| *class)
    }
}

/// Classifies the configured services against the embedded schema, for
/// `sealgate check-config`.
pub fn check(config: &ProxyConfig) -> Result<(), String> {
    let descriptors = crate::schema::Descriptors::from_config(config.descriptor_set.as_deref())
        .map_err(|e| e.to_string())?;
    let payloads = descriptors
        .payloads(&config.plaintext_paths)
        .map_err(|e| e.to_string())?;
    let namespaces = descriptors.namespaces().map_err(|e| e.to_string())?;
    Services::new(config, &payloads, &namespaces)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// `pkg.Service` of `/pkg.Service/Method`.
pub fn service_of(path: &str) -> &str {
    let p = path.strip_prefix('/').unwrap_or(path);
    p.split_once('/').map_or(p, |(s, _)| s)
}

/// The lane of the call to `path`.
pub fn classify<'a>(
    services: &Services,
    method: Option<&'a Method>,
    reflection_on: bool,
    path: &str,
) -> Result<Class<'a>, ProxyError> {
    let service = service_of(path);
    if reflection_on {
        if service == reflection::V1 {
            return Ok(Class::Reflection(reflection::V1));
        }
        if service == reflection::V1ALPHA {
            return Ok(Class::Reflection(reflection::V1ALPHA));
        }
    }
    match services.class(service) {
        None => Err(ProxyError::ServiceNotAllowed {
            service: service.to_string(),
        }),
        Some(ServiceClass::Rewrite) => match method {
            Some(m) if m.is_unary() => Ok(Class::Rewrite(m)),
            Some(m) => Err(ProxyError::StreamingNotRewritten {
                method: m.path.to_string(),
            }),
            None => Err(ProxyError::UnknownMethod {
                path: path.to_string(),
                schema: services.schema.clone(),
            }),
        },
        Some(ServiceClass::Plain) => Ok(Class::Stream { opaque: false }),
        Some(ServiceClass::Opaque) => Ok(Class::Stream { opaque: true }),
    }
}
