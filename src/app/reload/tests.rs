use std::sync::atomic::Ordering::Relaxed;

use super::*;
use crate::{codec::Session, keys::generate};

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sealgate-reload-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A config whose keys are in files: `active` encrypts, every key decrypts.
fn write_config(dir: &Path, keys: &[(&str, &str)], active: &str, listen: &str) -> PathBuf {
    let mut text = format!(
        "listen = \"{listen}\"\nupstream = \"http://127.0.0.1:1\"\n[codec]\nactive_key = \"{active}\"\n"
    );
    for (id, material) in keys {
        let f = dir.join(format!("{id}.b64"));
        std::fs::write(&f, material).unwrap();
        text.push_str(&format!(
            "[[codec.keys]]\nid = \"{id}\"\nmaterial_file = \"{id}.b64\"\n"
        ));
    }
    let path = dir.join("sealgate.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn reloader(path: &Path) -> Reloader {
    let config = Config::load(path).unwrap();
    let codec = Arc::new(crate::app::pipeline(&config.codec).unwrap());
    let upstream = Arc::new(
        crate::upstream::Upstream::new(&config.upstream, &config.upstream_options, 1).unwrap(),
    );
    let running = Running {
        codec,
        upstream,
        codec_server: None,
        listener: None,
    };
    Reloader::new(path, &config, running)
}

fn key_id_of(session: &Session, payload: &[u8]) -> String {
    let enc = session.encode_payload(payload).unwrap().unwrap();
    let view = crate::codec::PayloadView::parse(&enc).unwrap();
    String::from_utf8(view.metadata("encryption-key-id").unwrap().to_vec()).unwrap()
}

const PAYLOAD: &[u8] = b"\x0a\x16\x0a\x08encoding\x12\x0ajson/plain\x12\x03\"x\"";

#[test]
fn a_new_active_key_applies_to_new_sessions_and_old_payloads_still_decode() {
    let dir = scratch("rotate");
    let (_, m1) = generate("key").unwrap();
    let (_, m2) = generate("key").unwrap();
    let path = write_config(&dir, &[("k1", &m1)], "k1", "127.0.0.1:7233");
    let r = reloader(&path);
    let before = r.running.codec.session("ns");
    assert_eq!(key_id_of(&before, PAYLOAD), "k1");
    let old = before.encode_payload(PAYLOAD).unwrap().unwrap();
    assert!(!r.files_changed());

    write_config(&dir, &[("k1", &m1), ("k2", &m2)], "k2", "127.0.0.1:7233");
    assert!(r.files_changed());
    r.reload("test").unwrap();
    let after = r.running.codec.session("ns");
    assert_eq!(key_id_of(&after, PAYLOAD), "k2");
    assert_eq!(
        after.decode_payload(&old).unwrap().as_deref(),
        Some(PAYLOAD)
    );
    // A session that started before the reload keeps its keys.
    assert_eq!(key_id_of(&before, PAYLOAD), "k1");
    assert_eq!(r.stats().ok.load(Relaxed), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_file_keeps_the_running_keys() {
    let dir = scratch("bad");
    let (_, m1) = generate("key").unwrap();
    let path = write_config(&dir, &[("k1", &m1)], "k1", "127.0.0.1:7233");
    let r = reloader(&path);
    // The key file is replaced by something that is not a key.
    std::fs::write(dir.join("k1.b64"), "not a key").unwrap();
    assert!(r.files_changed());
    let e = r.reload("test").unwrap_err();
    assert!(e.contains("codec.keys[0].material"), "{e}");
    assert!(!e.contains(m1.as_str()));
    assert_eq!(key_id_of(&r.running.codec.session(""), PAYLOAD), "k1");
    assert_eq!(r.stats().failed.load(Relaxed), 1);
    // Reported once, not on every poll.
    assert!(!r.files_changed());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn settings_that_need_a_restart_are_named() {
    let dir = scratch("restart");
    let (_, m1) = generate("key").unwrap();
    let a = Config::load(&write_config(&dir, &[("k1", &m1)], "k1", "127.0.0.1:7233")).unwrap();
    let b = Config::load(&write_config(&dir, &[("k1", &m1)], "k1", "127.0.0.1:7300")).unwrap();
    assert_eq!(needs_restart(&a, &b), ["listen"]);
    assert!(needs_restart(&a, &a).is_empty());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_changed_secret_is_reloaded_not_hidden_behind_redacted_text() {
    // Restart detection once compared Debug text, which redacts secrets: a
    // new API key or token compared equal and was neither applied nor
    // reported. Now secrets are part of the generation and restart-only
    // settings are compared as values.
    let parse = |extra: &str| {
        let text = format!(
            "upstream = \"https://127.0.0.1:7234\"\n[upstream_options]\napi_key = \"{extra}\"\n\
             [codec]\nencryption = false\n"
        );
        Config::parse(&text, "t.toml", Path::new("."), &|_| None).unwrap()
    };
    let (a, b) = (parse("key-one"), parse("key-two"));
    assert!(
        needs_restart(&a, &b).is_empty(),
        "{:?}",
        needs_restart(&a, &b)
    );
    let mut c = parse("key-one");
    c.proxy.max_connection_age = std::time::Duration::from_secs(900);
    c.telemetry.service_name = "other".into();
    assert_eq!(
        needs_restart(&a, &c),
        ["proxy.max_connection_age", "telemetry.service_name"]
    );
}

#[test]
fn the_kept_configuration_holds_no_key_material() {
    let dir = scratch("secrets");
    let (_, m1) = generate("key").unwrap();
    let path = write_config(&dir, &[("k1", &m1)], "k1", "127.0.0.1:7233");
    let r = reloader(&path);
    let applied = r.applied.lock().unwrap();
    assert!(applied.config.codec.keys.keys.is_empty());
    assert!(applied.config.upstream_options.api_key.is_none());
    drop(applied);
    std::fs::remove_dir_all(&dir).unwrap();
}
