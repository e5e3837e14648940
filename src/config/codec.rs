//! `[codec]`: compression, encryption, static keys, KMS providers and
//! per-namespace key policies.

use super::*;

/// Key material: `material` (base64, `${VAR}` allowed) or `material_file`
/// (a file holding the base64). Warns when the file is readable by others.
pub(super) fn key_material(
    k: &mut Table<'_>,
    base: &Path,
    issues: &mut Issues,
    required: bool,
) -> Option<Zeroizing<Vec<u8>>> {
    let inline = k.string("material", issues).map(Zeroizing::new);
    let file = k.string("material_file", issues);
    let text = match (inline, file) {
        (Some(m), None) => Some(m),
        (None, Some(f)) => {
            let path = base.join(&f);
            issues.read_file(path.clone());
            warn_if_readable(&path, &k.path("material_file"), issues);
            std::fs::read_to_string(&path)
                .map(Zeroizing::new)
                .map_err(|e| {
                    issues.push(
                        &k.path("material_file"),
                        format!("cannot read {}: {e}", path.display()),
                    )
                })
                .ok()
        }
        (Some(_), Some(_)) => {
            issues.push(
                &k.path("material"),
                "set material or material_file, not both".into(),
            );
            None
        }
        (None, None) if k.contains("material") || k.contains("material_file") => None,
        (None, None) if !required => None,
        (None, None) => {
            issues.push(
                &k.path("material"),
                "missing: base64 of 32 random bytes (`sealgate keygen` makes one), \
                 or material_file"
                    .into(),
            );
            None
        }
    };
    text.and_then(|text| {
        keys::decode_material(&text)
            .map_err(|e| issues.push(&k.path("material"), e.to_string()))
            .ok()
    })
}

/// Key files should be readable by their owner only (mode 0600 or tighter).
pub(super) fn warn_if_readable(path: &Path, key: &str, issues: &mut Issues) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                issues.warn(
                    key,
                    format!(
                        "{} has mode {mode:04o}: others can read this key; run chmod 600 on it",
                        path.display()
                    ),
                );
            }
        }
    }
}

/// An id: present, not empty, not used before.
pub(super) fn key_id(k: &mut Table<'_>, taken: &[&str], issues: &mut Issues) -> Option<String> {
    let id = k.string("id", issues);
    match &id {
        None => issues.push(
            &k.path("id"),
            "missing: a name for this key, e.g. \"key-2026-11\"".into(),
        ),
        Some(id) if id.is_empty() => issues.push(&k.path("id"), "must not be empty".into()),
        Some(id) if taken.contains(&id.as_str()) => issues.push(
            &k.path("id"),
            format!("{:?} is used by another key", kms::redact_id(id)),
        ),
        _ => return id,
    }
    None
}

pub(super) fn kms_section(
    name: &str,
    t: &mut Table<'_>,
    base: &Path,
    taken: &mut Vec<String>,
    issues: &mut Issues,
) -> Option<ProviderSpec> {
    let provider = t.string("provider", issues);
    let timeout = t
        .duration("timeout", issues)
        .unwrap_or(kms::DEFAULT_TIMEOUT);
    let mut local_keys = Vec::new();
    let mut remote_keys = Vec::new();
    let settings = match provider.as_deref() {
        Some("local") => {
            for mut k in t.array_of_tables("keys", issues) {
                let ids: Vec<&str> = taken.iter().map(String::as_str).collect();
                let id = key_id(&mut k, &ids, issues);
                // Temporal Proxy's ids carry the key: base64key://<base64>.
                let from_uri = id.as_deref().and_then(LocalKek::material_from_uri);
                let material = key_material(&mut k, base, issues, from_uri.is_none());
                let material = match (material, from_uri) {
                    (Some(m), _) => Some(m),
                    (None, Some(Ok(m))) => Some(m),
                    (None, Some(Err(e))) => {
                        issues.push(&k.path("id"), format!("base64key:// id: {e}"));
                        None
                    }
                    (None, None) => None,
                };
                k.finish(issues);
                if let Some(id) = id {
                    taken.push(id.clone());
                    if let Some(material) = material {
                        local_keys.push(KeySpec { id, material });
                    }
                }
            }
            ProviderSettings::Local
        }
        Some(kind @ ("awskms" | "extension")) => {
            let ids = t.strings("keys", issues).unwrap_or_default();
            if ids.is_empty() {
                issues.push(
                    &t.path("keys"),
                    "missing: the ids of the KEKs this provider holds (for AWS: key ARNs or aliases)"
                        .into(),
                );
            }
            for (i, id) in ids.into_iter().enumerate() {
                if id.is_empty() || taken.contains(&id) {
                    issues.push(
                        &format!("{}[{i}]", t.path("keys")),
                        format!("{id:?} is empty or used by another key"),
                    );
                } else {
                    taken.push(id.clone());
                    remote_keys.push(id);
                }
            }
            if kind == "awskms" {
                ProviderSettings::Aws(AwsSettings {
                    region: t.string("region", issues),
                    endpoint: t.string("endpoint", issues),
                    profile: t.string("profile", issues),
                })
            } else {
                let endpoint = t.string("endpoint", issues).unwrap_or_default();
                if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                    issues.push(
                        &t.path("endpoint"),
                        format!(
                            "{endpoint:?}: the key service's address, e.g. \"http://127.0.0.1:50051\""
                        ),
                    );
                }
                let ca_pem = t.string("ca_file", issues).and_then(|f| {
                    let path = base.join(f);
                    issues.read_file(path.clone());
                    std::fs::read(&path)
                        .map_err(|e| {
                            issues.push(
                                &t.path("ca_file"),
                                format!("cannot read {}: {e}", path.display()),
                            )
                        })
                        .ok()
                });
                ProviderSettings::Extension(ExtensionSettings { endpoint, ca_pem })
            }
        }
        other => {
            issues.push(
                &t.path("provider"),
                format!("{other:?}: expected \"local\", \"awskms\" or \"extension\""),
            );
            return None;
        }
    };
    t.finish(issues);
    Some(ProviderSpec {
        config: ProviderConfig {
            name: name.to_string(),
            settings,
            timeout,
        },
        local_keys,
        remote_keys,
    })
}

pub(super) fn policy_section(
    name: &str,
    t: &mut Table<'_>,
    known: &[String],
    issues: &mut Issues,
) -> PolicySpec {
    let mut p = PolicySpec::new(name);
    p.active_key = t.string("active_key", issues);
    p.bind_namespace = t.bool("bind_namespace", issues).unwrap_or(false);
    p.decrypt_keys = t.strings("decrypt_keys", issues).unwrap_or_default();
    if let Some(d) = t.duration("dek_lifetime", issues) {
        p.rotation.lifetime = d;
    }
    if let Some(d) = t.duration("renew_before", issues) {
        p.rotation.renew_before = d;
    }
    if p.rotation.renew_before >= p.rotation.lifetime {
        issues.push(
            &t.path("renew_before"),
            format!(
                "{:?} is not shorter than dek_lifetime ({:?}): a new data key would be made on every call",
                p.rotation.renew_before, p.rotation.lifetime
            ),
        );
    }
    if let Some(id) = &p.active_key {
        refuse_secret_id(id, &t.path("active_key"), issues);
    }
    if let Some(id) = &p.active_key
        && !known.contains(id)
    {
        issues.push(
            &t.path("active_key"),
            format!(
                "{:?} is neither a [[codec.keys]] id nor a KEK of a [codec.kms] provider",
                kms::redact_id(id)
            ),
        );
    }
    for (i, id) in p.decrypt_keys.iter().enumerate() {
        if !known.contains(id) {
            issues.push(
                &format!("{}[{i}]", t.path("decrypt_keys")),
                format!("{:?} is not a configured key or KEK", kms::redact_id(id)),
            );
        }
    }
    t.finish(issues);
    p
}

/// A key id is written into every payload it encrypts: an id that carries
/// the key itself (Temporal Proxy's `base64key://<key>`) may decrypt old
/// data but never encrypt.
pub(super) fn refuse_secret_id(id: &str, path: &str, issues: &mut Issues) {
    if id.starts_with(kms::TEMPORAL_PROXY_SCHEME) {
        issues.push(
            path,
            format!(
                "{:?} carries the key itself, and an encrypting key's id is written into every payload Temporal stores: give the key an id of its own ([[codec.kms.local.keys]] id = \"...\" with material) and keep the base64key:// entry only to decrypt older data",
                kms::redact_id(id)
            ),
        );
    }
}

/// A static key whose id is its own material (the SDK samples' test key,
/// `test-key-test-key-test-key-test!`, is both): the id is written into
/// every payload and logged, so it must never encrypt. Reading old data
/// with it stays possible, with a warning. The id is never shown.
pub(super) fn refuse_self_keyed(spec: &KeysSpec, path: &str, issues: &mut Issues) {
    for (i, k) in spec.keys.iter().enumerate() {
        if k.material.as_slice() != k.id.as_bytes() {
            continue;
        }
        let encrypts = spec
            .policies
            .iter()
            .any(|p| p.active_key.as_deref() == Some(k.id.as_str()));
        let what = format!(
            "entry {} (id not shown) uses its own id as key material, as the SDK samples' test key does",
            i + 1
        );
        if encrypts {
            issues.push(
                path,
                format!(
                    "{what}: an encrypting key's id is written into every payload, so the key would be \
                     too. Give sealgate a fresh key (`sealgate keygen`) as active_key, and keep this \
                     one in decrypt_keys to read data the samples wrote"
                ),
            );
        } else {
            issues.warn(
                path,
                format!("{what}: it only decrypts here; anyone who can read a payload has it"),
            );
        }
    }
}

pub(super) fn codec_section(t: &mut Table<'_>, base: &Path, issues: &mut Issues) -> CodecConfig {
    let compression = t.bool("compression", issues).unwrap_or(true);
    let encryption = t.bool("encryption", issues).unwrap_or(true);
    let encode_failure_attributes = t.bool("encode_failure_attributes", issues).unwrap_or(true);
    let dek_cache_size = t
        .integer("dek_cache_size", issues)
        .map_or(envelope::DEFAULT_CACHE_SIZE, |n| n as usize);
    let active_key = t.string("active_key", issues);
    let mut spec = KeysSpec::default();
    let mut taken: Vec<String> = Vec::new();
    for mut k in t.array_of_tables("keys", issues) {
        let ids: Vec<&str> = taken.iter().map(String::as_str).collect();
        let id = key_id(&mut k, &ids, issues);
        let material = key_material(&mut k, base, issues, true);
        k.finish(issues);
        if let Some(id) = id {
            taken.push(id.clone());
            if let Some(material) = material {
                spec.keys.push(KeySpec { id, material });
            }
        }
    }
    for (name, mut p) in t.named_tables("kms", issues) {
        if let Some(p) = kms_section(&name, &mut p, base, &mut taken, issues) {
            spec.providers.push(p);
        }
    }
    let policies = t.named_tables("policies", issues);
    let explicit = !policies.is_empty();
    for (name, mut p) in policies {
        spec.policies
            .push(policy_section(&name, &mut p, &taken, issues));
    }
    if explicit {
        if active_key.is_some() {
            issues.push(
                &t.path("active_key"),
                "set active_key in [codec.policies.default] when [codec.policies] is used".into(),
            );
        }
        if !spec.policies.iter().any(|p| p.name == DEFAULT_POLICY) && encryption {
            issues.push(
                &t.path("policies.default"),
                "missing: encryption is on, so a default policy must cover every namespace \
                 without its own (including ones created later)"
                    .into(),
            );
        }
    } else {
        // The first-cut shape: one keyring, `active_key` encrypts, every key decrypts.
        if let Some(id) = &active_key {
            refuse_secret_id(id, &t.path("active_key"), issues);
        }
        match &active_key {
            None if encryption => issues.push(
                &t.path("active_key"),
                "missing: encryption is on, so name the key that encrypts \
                 (or set encryption = false to only decrypt)"
                    .into(),
            ),
            Some(id) if !taken.contains(id) && !t.has_key_issues(issues) => issues.push(
                &t.path("active_key"),
                format!("{id:?} is not the id of any [[codec.keys]] entry"),
            ),
            _ => {}
        }
        spec.policies.push(PolicySpec {
            active_key,
            decrypt_all: true,
            ..PolicySpec::new(DEFAULT_POLICY)
        });
    }
    refuse_self_keyed(&spec, &t.path("keys"), issues);
    if !encryption {
        issues.warn(
            &t.path("encryption"),
            "off: decrypt-only posture. Payloads go upstream as they are (plaintext), \
             and payloads encrypted earlier are still decrypted"
                .into(),
        );
    }
    t.finish(issues);
    CodecConfig {
        compression,
        encryption,
        encode_failure_attributes,
        keys: spec,
        dek_cache_size,
    }
}
