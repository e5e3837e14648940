//! Namespace translation: workers use short local names, the upstream has
//! its own (`orders` ↔ `orders.a1b2c` on Temporal Cloud). Requests are
//! rewritten to the upstream's names and responses back, in every
//! namespace field of the schema (`namespace`, `*_namespace`, at any depth,
//! history events included) and in the `temporal-namespace` header.

use std::collections::HashMap;

use crate::{codec::CodecError, rewrite::PayloadVisitor};

/// `[…namespaces]` of an upstream: explicit overrides first, else prefix
/// and suffix added on the way up and removed on the way back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Translation {
    pub prefix: String,
    pub suffix: String,
    /// Local name → upstream name.
    pub overrides: Vec<(String, String)>,
}

impl Translation {
    /// The upstream's name for a local one (`""` stays `""`).
    pub fn to_upstream(&self, local: &str) -> String {
        if local.is_empty() {
            return String::new();
        }
        if let Some((_, remote)) = self.overrides.iter().find(|(l, _)| l == local) {
            return remote.clone();
        }
        format!("{}{local}{}", self.prefix, self.suffix)
    }

    /// The local name for an upstream one; names that do not follow the
    /// scheme come back as they are.
    pub fn to_local(&self, remote: &str) -> String {
        if let Some((local, _)) = self.overrides.iter().find(|(_, r)| r == remote) {
            return local.clone();
        }
        if self.prefix.is_empty() && self.suffix.is_empty() {
            return remote.to_string();
        }
        remote
            .strip_prefix(self.prefix.as_str())
            .and_then(|r| r.strip_suffix(self.suffix.as_str()))
            .filter(|r| !r.is_empty())
            .unwrap_or(remote)
            .to_string()
    }
}

impl Translation {
    /// Upstream names two local names would share: an override's upstream
    /// name that another local name also reaches through the prefix and
    /// suffix (`payments` → `payments-prod.a1b2c` by override, and
    /// `payments-prod` → `payments-prod.a1b2c` by suffix). A caller allowed
    /// the second would reach the first's namespace under another key
    /// policy. Returns (override's local name, other local name, upstream).
    pub fn collisions(&self) -> Vec<(String, String, String)> {
        let mut found = Vec::new();
        for (local, remote) in &self.overrides {
            let by_rule = remote
                .strip_prefix(self.prefix.as_str())
                .and_then(|r| r.strip_suffix(self.suffix.as_str()))
                .filter(|r| !r.is_empty());
            if let Some(other) = by_rule
                && other != local
                && !self.overrides.iter().any(|(l, _)| l == other)
            {
                found.push((local.clone(), other.to_string(), remote.clone()));
            }
            for (l2, r2) in &self.overrides {
                if l2 > local && r2 == remote {
                    found.push((local.clone(), l2.clone(), remote.clone()));
                }
            }
        }
        found
    }
}

/// Rewriter visitor over the namespace plan: maps each namespace field.
pub(crate) struct Rename<'a> {
    pub(crate) translation: &'a Translation,
    pub(crate) up: bool,
    /// Names already mapped in this message (histories repeat them).
    pub(crate) seen: HashMap<Vec<u8>, Option<Vec<u8>>>,
}

impl PayloadVisitor for Rename<'_> {
    fn payload(&mut self, field: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
        if let Some(done) = self.seen.get(field) {
            return Ok(done.clone());
        }
        // Not UTF-8: not a name we know; leave it.
        let mapped = std::str::from_utf8(field).ok().and_then(|name| {
            let new = if self.up {
                self.translation.to_upstream(name)
            } else {
                self.translation.to_local(name)
            };
            (new != name).then(|| new.into_bytes())
        });
        self.seen.insert(field.to_vec(), mapped.clone());
        Ok(mapped)
    }
}

#[cfg(test)]
mod tests;
