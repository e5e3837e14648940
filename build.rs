//! Embeds the Temporal API descriptor set published by `temporalio-protos`,
//! and generates the client and server of sealgate's own KMS extension
//! service (`proto/sealgate/kms/v1/kms.proto`, compiled with protox: no
//! protoc needed).
//!
//! `temporalio-protos` declares `links = "temporalio_protos"` and prints
//! `cargo:descriptor_path=…`, which Cargo hands to us as
//! `DEP_TEMPORALIO_PROTOS_DESCRIPTOR_PATH`. We write it into OUT_DIR so
//! `include_bytes!` sees a stable path; no Temporal .proto lives in this repo.
//!
//! The crate vendors every Temporal API file but compiles only those its
//! services import. The files it leaves out that can carry payloads (the
//! notification service's `OnCompleteRequest`, which a System Nexus envelope
//! may name; history export; External Storage references) are compiled here
//! from the crate's own sources (found with `cargo metadata`) and added.

#![allow(clippy::expect_used)] // a build script may stop the build

use std::{env, fs, path::PathBuf, process::Command};

use prost::Message;
use prost_types::FileDescriptorSet;

/// Temporal API files `temporalio-protos` vendors but does not compile.
const LEFT_OUT: &[&str] = &[
    "temporal/api/notificationservice/v1/request_response.proto",
    "temporal/api/export/v1/message.proto",
    "temporal/api/sdk/v1/external_storage.proto",
    "temporal/api/sdk/v1/enhanced_stack_trace.proto",
];

/// The `protos` directory of the `temporalio-protos` package this build
/// uses, from `cargo metadata` (offline: the sources are already here).
fn protos_dir() -> PathBuf {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--manifest-path",
        ])
        .arg(manifest.join("Cargo.toml"))
        .output()
        .unwrap_or_else(|e| panic!("running cargo metadata: {e}"));
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let meta: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let manifest = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "temporalio-protos")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("cargo metadata lists temporalio-protos");
    PathBuf::from(manifest)
        .parent()
        .expect("a manifest path has a parent")
        .join("protos")
}

fn main() {
    let src = env::var_os("DEP_TEMPORALIO_PROTOS_DESCRIPTOR_PATH").map(PathBuf::from);
    let Some(src) = src else {
        panic!(
            "DEP_TEMPORALIO_PROTOS_DESCRIPTOR_PATH is not set: the temporalio-protos \
             dependency must be built with feature `vendored-protox`"
        );
    };
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let bytes = fs::read(&src).unwrap_or_else(|e| panic!("reading {}: {e}", src.display()));
    let mut set = FileDescriptorSet::decode(bytes.as_slice())
        .unwrap_or_else(|e| panic!("{}: {e}", src.display()));
    let api = protos_dir().join("api_upstream");
    let extra = protox::compile(LEFT_OUT, [&api]).unwrap_or_else(|e| panic!("{LEFT_OUT:?}: {e}"));
    for file in extra.file {
        if !set.file.iter().any(|f| f.name == file.name) {
            set.file.push(file);
        }
    }
    fs::write(out.join("temporal.fds"), set.encode_to_vec())
        .unwrap_or_else(|e| panic!("writing the descriptor set into OUT_DIR: {e}"));
    println!("cargo:rerun-if-changed={}", src.display());
    // The API version, for the messages that name the schema.
    let version = fs::read_to_string("Cargo.lock")
        .ok()
        .and_then(|lock| {
            let at = lock.find("name = \"temporalio-protos\"\nversion = \"")?;
            let rest = &lock[at + "name = \"temporalio-protos\"\nversion = \"".len()..];
            Some(rest[..rest.find('"')?].to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=SEALGATE_TEMPORAL_API=temporalio-protos {version}");
    println!("cargo:rerun-if-changed=Cargo.lock");

    let kms = "proto/sealgate/kms/v1/kms.proto";
    let fds = protox::compile([kms], ["proto"]).unwrap_or_else(|e| panic!("{kms}: {e}"));
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)
        .unwrap_or_else(|e| panic!("generating code for {kms}: {e}"));
    println!("cargo:rerun-if-changed={kms}");
    println!("cargo:rerun-if-changed=build.rs");
}
