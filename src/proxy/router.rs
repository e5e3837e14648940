//! Which upstream serves a call: `[[routes]]` rules by namespace (exact or
//! `*`/`?` pattern) and request metadata, tried in order; a system upstream
//! for calls that name no namespace; a default for the rest. An upstream
//! address may be a template (`{namespace}.tmprl.cloud:7233`): each
//! namespace then gets its own connection pool, made on first use.

use std::{collections::HashMap, sync::Arc};

use dashmap::DashMap;
use http::HeaderMap;

use crate::{
    auth::glob,
    upstream::{Credentials, TlsError, Upstream, UpstreamOptions},
};

/// Pools a reload keeps, each with the credentials it loaded for it, to
/// set when the reload publishes.
pub type KeptCredentials = Vec<(Arc<Upstream>, Credentials)>;

/// Most per-namespace pools one template upstream keeps.
const MAX_POOLS: usize = 1024;

/// A named upstream: one pool, or one pool per namespace.
#[derive(Debug)]
enum Target {
    Fixed(Arc<Upstream>),
    Template(Box<Template>),
}

#[derive(Debug)]
struct Template {
    address: crate::upstream::Address,
    options: UpstreamOptions,
    pools: DashMap<String, Arc<Upstream>>,
}

#[derive(Debug)]
struct Route {
    namespace: Option<String>,
    metadata: Vec<(String, String)>,
    upstream: String,
}

/// One `[upstreams.NAME]`.
#[derive(Debug, Clone)]
pub struct NamedUpstream {
    pub name: String,
    /// May contain `{namespace}` (e.g. `{namespace}.tmprl.cloud:7233`): one
    /// connection pool per namespace, made on first use.
    pub address: crate::upstream::Address,
    pub options: UpstreamOptions,
}

/// One `[[routes]]` rule: every condition given must hold.
#[derive(Debug, Clone)]
pub struct RouteConfig {
    /// Exact name, or a pattern with `*` and `?`.
    pub namespace: Option<String>,
    /// Request metadata that must be present with exactly these values.
    pub metadata: Vec<(String, String)>,
    pub upstream: String,
}

/// The `[routing]` section and the `[[routes]]` rules, tried in order.
#[derive(Debug, Clone)]
pub struct RoutingConfig {
    pub routes: Vec<RouteConfig>,
    /// Calls no rule matches.
    pub default: String,
    /// Calls that name no namespace (GetSystemInfo, health).
    pub system: String,
}

/// Name of the upstream given by `upstream` and `[upstream_options]`.
pub const DEFAULT_UPSTREAM: &str = "default";

/// The routing table.
#[derive(Debug)]
pub struct Router {
    /// The upstream of `upstream` + `[upstream_options]`.
    default_upstream: Arc<Upstream>,
    targets: HashMap<String, Target>,
    routes: Vec<Route>,
    default: String,
    system: String,
}

/// No upstream can serve a call.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error(
        "namespace {0:?} cannot be put into an upstream address: use letters, digits, '-' and '.'"
    )]
    BadNamespace(String),
    #[error("upstream {upstream}: {source}")]
    Tls { upstream: String, source: TlsError },
}

impl Router {
    /// `default` is the upstream of `upstream` + `[upstream_options]`.
    pub fn new(
        default: Arc<Upstream>,
        upstreams: &[NamedUpstream],
        routing: &RoutingConfig,
    ) -> Result<Router, RouteError> {
        Ok(Router::rebuild(None, default, upstreams, routing)?.0)
    }

    /// A router for a reload: a named upstream whose address and settings
    /// did not change keeps its pool (and its open connections), with its
    /// credentials loaded afresh (key files and API keys may have changed
    /// behind the same names); the rest is built new. The credentials are
    /// returned, not set: the caller publishes them with the router, once
    /// the whole reload has loaded.
    pub fn rebuild(
        previous: Option<&Router>,
        default: Arc<Upstream>,
        upstreams: &[NamedUpstream],
        routing: &RoutingConfig,
    ) -> Result<(Router, KeptCredentials), RouteError> {
        let mut targets = HashMap::new();
        let mut credentials = Vec::new();
        targets.insert(DEFAULT_UPSTREAM.to_string(), Target::Fixed(default.clone()));
        for u in upstreams {
            let kept = previous
                .and_then(|p| p.targets.get(&u.name))
                .and_then(|t| match t {
                    Target::Fixed(up) if up.same_setup(&u.address, &u.options) => Some(up.clone()),
                    _ => None,
                });
            if let Some(up) = kept {
                let c = Credentials::load(&u.address, &u.options).map_err(|source| {
                    RouteError::Tls {
                        upstream: u.name.clone(),
                        source,
                    }
                })?;
                credentials.push((up.clone(), c));
                targets.insert(u.name.clone(), Target::Fixed(up));
                continue;
            }
            let target = if u.address.is_template() {
                Target::Template(Box::new(Template {
                    address: u.address.clone(),
                    options: u.options.clone(),
                    pools: DashMap::new(),
                }))
            } else {
                let up =
                    Upstream::new(&u.address, &u.options, default.shards()).map_err(|source| {
                        RouteError::Tls {
                            upstream: u.name.clone(),
                            source,
                        }
                    })?;
                Target::Fixed(Arc::new(up))
            };
            targets.insert(u.name.clone(), target);
        }
        let router = Router {
            default_upstream: default,
            targets,
            routes: routing
                .routes
                .iter()
                .map(|r| Route {
                    namespace: r.namespace.clone(),
                    metadata: r.metadata.clone(),
                    upstream: r.upstream.clone(),
                })
                .collect(),
            default: routing.default.clone(),
            system: routing.system.clone(),
        };
        Ok((router, credentials))
    }

    /// True when some upstream translates namespace names.
    pub fn translates(&self) -> bool {
        self.targets.values().any(|t| match t {
            Target::Fixed(u) => u.translation().is_some(),
            Target::Template(t) => t.options.namespaces.is_some(),
        })
    }

    /// The upstream given by `upstream` + `[upstream_options]`.
    pub fn default_upstream(&self) -> &Arc<Upstream> {
        &self.default_upstream
    }

    /// The upstream for a call in `namespace` (`""`: none) with `headers`.
    pub fn pick(&self, namespace: &str, headers: &HeaderMap) -> Result<Arc<Upstream>, RouteError> {
        let matches = |r: &Route| {
            r.namespace
                .as_deref()
                .is_none_or(|p| !namespace.is_empty() && glob(p, namespace))
                && r.metadata.iter().all(|(k, v)| {
                    headers
                        .get_all(k.as_str())
                        .iter()
                        .any(|h| h.as_bytes() == v.as_bytes())
                })
        };
        let name = match self.routes.iter().find(|r| matches(r)) {
            Some(r) => &r.upstream,
            None if namespace.is_empty() => &self.system,
            None => &self.default,
        };
        match self.targets.get(name) {
            Some(Target::Fixed(u)) => Ok(u.clone()),
            Some(Target::Template(t)) => {
                let Template {
                    address,
                    options,
                    pools,
                } = &**t;
                if let Some(u) = pools.get(namespace) {
                    return Ok(u.clone());
                }
                // The address takes the upstream's name for the namespace.
                let remote = match &options.namespaces {
                    Some(t) => t.to_upstream(namespace),
                    None => namespace.to_string(),
                };
                if !dns_safe(&remote) {
                    return Err(RouteError::BadNamespace(remote));
                }
                let up = Upstream::new(
                    &address.for_namespace(&remote),
                    options,
                    self.default_upstream.shards(),
                )
                .map_err(|source| RouteError::Tls {
                    upstream: name.clone(),
                    source,
                })?;
                if pools.len() >= MAX_POOLS {
                    pools.clear();
                }
                Ok(pools
                    .entry(namespace.to_string())
                    .or_insert_with(|| Arc::new(up))
                    .clone())
            }
            // Names are checked when the configuration loads.
            None => Ok(self.default_upstream.clone()),
        }
    }
}

/// A namespace that can stand in a host name: letters, digits, `-`, `.`,
/// no leading or trailing dot, no empty label.
fn dns_safe(ns: &str) -> bool {
    !ns.is_empty()
        && ns.len() <= 253
        && ns
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

#[cfg(test)]
mod tests;
