//! The `sealgate` binary as an operator uses it.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sealgate"))
}

fn tmp(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Runs sealgate with `args`, then `path`, feeding `stdin`.
fn pipe(args: &[&str], path: &std::path::Path, stdin: &str) -> std::process::Output {
    crate::support::run_with_stdin(bin().args(args).arg(path), stdin.as_bytes())
}

fn dev_config() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/dev.toml")
}

#[test]
fn check_config_accepts_the_dev_config_and_lists_every_problem_with_exit_64() {
    let ok = bin()
        .arg("check-config")
        .arg(dev_config())
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let d = tmp("check");
    let bad = d.join("bad.toml");
    std::fs::write(
        &bad,
        "listen = 5\nupstream = \"ftp://x\"\nbogus = true\n[codec]\nencryption = true\n",
    )
    .unwrap();
    let out = bin().arg("check-config").arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for path in ["listen", "upstream", "bogus", "codec.active_key"] {
        assert!(
            err.contains(&format!("- {path}:")),
            "{path} missing in:\n{err}"
        );
    }
    // `run` refuses the same file the same way.
    let out = bin().args(["run", "--config"]).arg(&bad).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_service_the_schema_does_not_define_is_a_config_error_unless_opaque() {
    let d = tmp("services");
    let path = d.join("services.toml");
    let base = std::fs::read_to_string(dev_config()).unwrap();
    let allowed = "[proxy]\nallowed_services = [\"temporal.api.workflowservice.v1.WorkflowService\", \"acme.Billing\"]\n";
    std::fs::write(&path, format!("{base}\n{allowed}")).unwrap();
    for args in [&["check-config"][..], &["run", "--config"]] {
        let out = bin().args(args).arg(&path).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("acme.Billing") && err.contains("opaque_services"),
            "{err}"
        );
    }
    std::fs::write(
        &path,
        format!("{base}\n{allowed}opaque_services = [\"acme.Billing\"]\n"),
    )
    .unwrap();
    let out = bin().arg("check-config").arg(&path).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// The `id = "…"` value of keygen output.
fn generated_id(entry: &str) -> String {
    entry
        .lines()
        .find(|l| l.starts_with("id = "))
        .unwrap()
        .split('"')
        .nth(1)
        .unwrap()
        .to_string()
}

#[test]
fn payloads_encode_and_decode_round_trip_and_keygen_makes_usable_keys() {
    let d = tmp("payloads");
    let input = r#"{"payloads":[{"metadata":{"encoding":"anNvbi9wbGFpbg=="},"data":"InNlY3JldCI="},{"metadata":{"encoding":"YmluYXJ5L251bGw="}}]}"#;
    // Static format ([[codec.keys]]) and envelope format (a local KEK).
    for kek in [false, true] {
        let mut keygen = bin();
        keygen.arg("keygen");
        if kek {
            keygen.arg("--kek");
        }
        let keygen = keygen.output().unwrap();
        assert!(keygen.status.success());
        let entry = String::from_utf8(keygen.stdout).unwrap();
        let id = generated_id(&entry);
        let config = d.join(format!("c-{kek}.toml"));
        let text = if kek {
            assert!(id.starts_with("kek-"), "{entry}");
            format!(
                "upstream = \"127.0.0.1:1\"\n{entry}\n[codec.policies.default]\nactive_key = \"{id}\"\n"
            )
        } else {
            format!("upstream = \"127.0.0.1:1\"\n[codec]\nactive_key = \"{id}\"\n{entry}")
        };
        std::fs::write(&config, text).unwrap();
        let run = |dir: &str, stdin: &str| {
            let out = pipe(&["payloads", dir, "--config"], &config, stdin);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8(out.stdout).unwrap()
        };
        let encoded = run("encode", input);
        assert!(
            encoded.contains("YmluYXJ5L2VuY3J5cHRlZA=="),
            "binary/encrypted: {encoded}"
        );
        assert!(!encoded.contains("InNlY3JldCI="));
        // encryption-dek is there exactly in the envelope format.
        let v: serde_json::Value = serde_json::from_str(&encoded).unwrap();
        assert_eq!(
            v["payloads"][0]["metadata"].get("encryption-dek").is_some(),
            kek,
            "{encoded}"
        );
        let decoded = run("decode", &encoded);
        let v: serde_json::Value = serde_json::from_str(&decoded).unwrap();
        let want: serde_json::Value = serde_json::from_str(input).unwrap();
        assert_eq!(v, want);
        // Bad JSON is a clear error, exit 65.
        let out = pipe(
            &["payloads", "decode", "--config"],
            &config,
            "{\"payload\":1}",
        );
        assert_eq!(out.status.code(), Some(65));
        assert!(String::from_utf8_lossy(&out.stderr).contains("payloads"));
    }
    std::fs::remove_dir_all(&d).unwrap();
}

/// Kills the child if the test fails half-way, so nothing outlives it.
struct Reaper(std::process::Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn run_serves_and_exits_zero_on_sigterm() {
    let child = bin()
        .args(["run", "--config"])
        .arg(dev_config())
        .env("SEALGATE_LISTEN", "127.0.0.1:0")
        .env("SEALGATE_CODEC_SERVER_LISTEN", "127.0.0.1:0")
        .env("SEALGATE_ADMIN_LISTEN", "127.0.0.1:0")
        .env("SEALGATE_UPSTREAM", "http://127.0.0.1:1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Reaper(child);
    let mut stderr = BufReader::new(child.0.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "sealgate exited early"
        );
        if line.contains("sealgate ready") {
            let at = line.find("listen=").unwrap() + "listen=".len();
            break line[at..].split_whitespace().next().unwrap().to_string();
        }
        assert!(Instant::now() < deadline, "no ready line");
    };
    assert!(
        std::net::TcpStream::connect(&addr).is_ok(),
        "listening on {addr}"
    );
    let kill = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn protoset_writes_the_embedded_descriptor_set() {
    let d = tmp("protoset");
    let path = d.join("temporal.protoset");
    let out = bin().arg("protoset").arg(&path).output().unwrap();
    assert!(out.status.success());
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes, sealgate::schema::EMBEDDED_DESCRIPTOR_SET);
    let schema = sealgate::schema::Schema::from_descriptor_set(&bytes).unwrap();
    assert!(
        schema
            .method("/temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution")
            .is_some()
    );
    std::fs::remove_dir_all(&d).unwrap();
}

/// Stderr lines, read on a thread so a missing line times out.
struct Lines(std::sync::mpsc::Receiver<String>);

impl Lines {
    fn new(stderr: impl std::io::Read + Send + 'static) -> Lines {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines(rx)
    }

    /// The next line containing `want`, within 30 s.
    fn wait(&self, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.0.recv_timeout(left) {
                Ok(line) if line.contains(want) => return line,
                Ok(_) => {}
                Err(e) => panic!("no {want:?} line from sealgate: {e}"),
            }
        }
    }
}

#[test]
fn sighup_reloads_keys_and_a_bad_file_keeps_the_old_ones() {
    use std::os::unix::fs::PermissionsExt;
    let d = tmp("sighup");
    let key = |name: &str| {
        let out = bin().arg("keygen").output().unwrap();
        let entry = String::from_utf8(out.stdout).unwrap();
        let material = entry
            .lines()
            .last()
            .unwrap()
            .split('"')
            .nth(1)
            .unwrap()
            .to_string();
        std::fs::write(d.join(name), material).unwrap();
    };
    key("k1.b64");
    key("k2.b64");
    // k1 is readable by everyone: a warning, not a refusal.
    std::fs::set_permissions(d.join("k1.b64"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(d.join("k2.b64"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = d.join("sealgate.toml");
    let write = |active: &str, extra: &str| {
        std::fs::write(
            &config,
            format!(
                "upstream = \"http://127.0.0.1:1\"\nreload_check_interval = \"off\"\n[codec]\nactive_key = \"{active}\"\n\
                 [[codec.keys]]\nid = \"k1\"\nmaterial_file = \"k1.b64\"\n\
                 [[codec.keys]]\nid = \"k2\"\nmaterial_file = \"k2.b64\"\n{extra}"
            ),
        )
        .unwrap();
    };
    write("k1", "");
    let child = bin()
        .args(["run", "--config"])
        .arg(&config)
        .env("SEALGATE_LISTEN", "127.0.0.1:0")
        .env("SEALGATE_ADMIN_LISTEN", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Reaper(child);
    let lines = Lines::new(child.0.stderr.take().unwrap());
    let ready = lines.wait("sealgate ready");
    let at = ready.find("listen=").unwrap() + "listen=".len();
    let addr = ready[at..].split_whitespace().next().unwrap().to_string();
    let warning = lines.wait("others can read this key");
    assert!(
        warning.contains("0644") && warning.contains("k1.b64"),
        "{warning}"
    );

    let hup = || {
        let ok = Command::new("kill")
            .args(["-HUP", &child.0.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    write("k2", "");
    hup();
    lines.wait("configuration reloaded");
    let policy = lines.wait("key policy");
    assert!(policy.contains("static with \"k2\""), "{policy}");

    // A broken file: the error is logged, the old keys stay, serving goes on.
    write("k3", "");
    hup();
    let failed = lines.wait("reload failed");
    assert!(failed.contains("\"k3\""), "{failed}");
    assert!(std::net::TcpStream::connect(&addr).is_ok());
    // A setting that needs a restart is named.
    write("k1", "[proxy]\nmax_message_bytes = 1000000\n");
    hup();
    lines.wait("configuration reloaded");
    let restart = lines.wait("only take effect after a restart");
    assert!(restart.contains("proxy.max_message_bytes"), "{restart}");
    assert!(std::net::TcpStream::connect(&addr).is_ok());

    let kill = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    std::fs::remove_dir_all(&d).unwrap();
}
