//! `[external_storage]`: offloading large payloads to the user's own S3
//! bucket, with per-namespace policies.

use super::*;
use crate::storage::{DEFAULT_THRESHOLD, NamespacePolicy, StorageConfig};

pub(super) fn storage_section(t: &mut Table<'_>, issues: &mut Issues) -> StorageConfig {
    let driver = t.string("driver", issues).unwrap_or_else(|| "s3".into());
    if driver != "s3" {
        issues.push(
            &t.path("driver"),
            format!("{driver:?}: the one driver is \"s3\" (S3 or an S3-compatible store)"),
        );
    }
    let enabled = t.bool("enabled", issues).unwrap_or(true);
    let bucket = t.string("bucket", issues).unwrap_or_default();
    let endpoint = t.string("endpoint", issues);
    if let Some(e) = &endpoint
        && !(e.starts_with("http://") || e.starts_with("https://"))
    {
        issues.push(
            &t.path("endpoint"),
            format!("{e:?}: write https://host:port"),
        );
    }
    let region = t.string("region", issues);
    let prefix = t.string("prefix", issues).unwrap_or_default();
    if !prefix.is_empty() && !prefix.ends_with('/') {
        issues.warn(
            &t.path("prefix"),
            format!("{prefix:?} does not end with '/': keys will read {prefix}v0/…"),
        );
    }
    let threshold = t
        .integer("threshold", issues)
        .map_or(DEFAULT_THRESHOLD, |n| n as usize);
    if threshold == 0 {
        issues.push(&t.path("threshold"), "must be over 0 bytes".into());
    }
    let path_style = t.bool("path_style", issues).unwrap_or(false);
    let max_concurrent = t.integer_in("max_concurrent", 16, 1..=256, issues) as usize;
    let mut namespaces = Vec::new();
    for (i, mut n) in t
        .array_of_tables("namespaces", issues)
        .into_iter()
        .enumerate()
    {
        let Some(namespace) = n.string("namespace", issues) else {
            issues.push(
                &format!("{}[{i}].namespace", t.path("namespaces")),
                "missing: the namespace (or pattern) this policy is for".into(),
            );
            continue;
        };
        let policy = NamespacePolicy {
            namespace,
            enabled: n.bool("enabled", issues).unwrap_or(true),
            bucket: n.string("bucket", issues),
            threshold: n.integer("threshold", issues).map(|v| v as usize),
        };
        n.finish(issues);
        namespaces.push(policy);
    }
    let needs_bucket = enabled || namespaces.iter().any(|p| p.enabled && p.bucket.is_none());
    if needs_bucket && bucket.is_empty() {
        issues.push(
            &t.path("bucket"),
            "missing: the S3 bucket offloaded payloads go to (it must exist)".into(),
        );
    }
    t.finish(issues);
    StorageConfig {
        enabled,
        bucket,
        endpoint,
        region,
        prefix,
        threshold,
        path_style,
        max_concurrent,
        namespaces,
    }
}
