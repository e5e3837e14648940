//! Embeds the Temporal API descriptor set published by `temporalio-protos`,
//! and generates the client and server of sealgate's own KMS extension
//! service (`proto/sealgate/kms/v1/kms.proto`, compiled with protox: no
//! protoc needed).
//!
//! `temporalio-protos` declares `links = "temporalio_protos"` and prints
//! `cargo:descriptor_path=…`, which Cargo hands to us as
//! `DEP_TEMPORALIO_PROTOS_DESCRIPTOR_PATH`. We copy the file into OUT_DIR so
//! `include_bytes!` sees a stable path; no Temporal .proto lives in this repo.

#![allow(clippy::expect_used)] // a build script may stop the build

use std::{env, fs, path::PathBuf};

fn main() {
    let src = env::var_os("DEP_TEMPORALIO_PROTOS_DESCRIPTOR_PATH").map(PathBuf::from);
    let Some(src) = src else {
        panic!(
            "DEP_TEMPORALIO_PROTOS_DESCRIPTOR_PATH is not set: the temporalio-protos \
             dependency must be built with feature `vendored-protox`"
        );
    };
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::copy(&src, out.join("temporal.fds"))
        .unwrap_or_else(|e| panic!("copying {} into OUT_DIR: {e}", src.display()));
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
