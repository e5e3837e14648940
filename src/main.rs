//! The `sealgate` command: thin wiring over the library.

use std::{
    io::{Read, Write},
    path::PathBuf,
    process::ExitCode,
};

use clap::{Parser, Subcommand, ValueEnum};
use sealgate::{
    App,
    codec::{PayloadVisitor, json},
    config::{Config, EXIT_BAD_CONFIG},
    keys,
    proxy::server::Drained,
};

/// sysexits' EX_DATAERR: the input was not usable.
const EXIT_BAD_INPUT: u8 = 65;

#[derive(Parser)]
#[command(
    name = "sealgate",
    version,
    about = "Keeps Temporal payloads private on the wire"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway: listen for workers, forward to Temporal.
    Run {
        /// The sealgate configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Log as JSON lines instead of human-readable text.
        #[arg(long)]
        log_json: bool,
    },
    /// Encode or decode remote-codec JSON ({"payloads":[…]}) from stdin to stdout.
    Payloads {
        #[arg(value_enum)]
        direction: Direction,
        /// The sealgate configuration whose codec settings and keys to use.
        #[arg(long, short)]
        config: PathBuf,
        /// Namespace the payloads belong to (selects its key policy; with a
        /// single [codec] section every namespace shares the same keys).
        #[arg(long, short)]
        namespace: Option<String>,
    },
    /// Print a fresh key: a [[codec.keys]] entry (static format), or with
    /// `--kek` a local KEK for envelope encryption.
    Keygen {
        /// Make a local key-encryption key ([codec.kms.NAME] provider "local").
        #[arg(long)]
        kek: bool,
    },
    /// Write the embedded Temporal API descriptor set (a protoset for grpcurl and ghz).
    Protoset {
        /// Where to write it.
        path: PathBuf,
    },
    /// Compare a Temporal API descriptor set with the embedded one.
    Schema {
        #[command(subcommand)]
        command: SchemaCommand,
    },
    /// Validate a configuration without starting anything, and show the
    /// upstreams it resolves to (TLS mode, where each setting came from;
    /// never a secret).
    CheckConfig {
        /// The configuration file.
        config: PathBuf,
        /// Print the resolved upstreams as JSON instead.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SchemaCommand {
    /// Print the RPCs and payload paths FILE adds, removes or retypes
    /// against the embedded schema. Exit 1 when FILE has a request-side RPC
    /// or payload path the embedded schema lacks (sealgate would refuse
    /// those calls: load FILE with [schema] descriptor_set), 64 when FILE is
    /// not a Temporal API descriptor set.
    Diff {
        /// A binary FileDescriptorSet (`buf build -o`, `protoc
        /// --include_imports -o`).
        file: PathBuf,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Direction {
    Encode,
    Decode,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config, log_json } => run(&config, log_json),
        Command::Payloads {
            direction,
            config,
            namespace,
        } => payloads(direction, &config, namespace.as_deref().unwrap_or("")),
        Command::Protoset { path } => {
            match std::fs::write(&path, sealgate::schema::EMBEDDED_DESCRIPTOR_SET) {
                Ok(()) => {
                    println!(
                        "{}: {} bytes (the Temporal API, as embedded in this sealgate)",
                        path.display(),
                        sealgate::schema::EMBEDDED_DESCRIPTOR_SET.len()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("sealgate: writing {}: {e}", path.display());
                    ExitCode::FAILURE
                }
            }
        }
        Command::Keygen { kek } => match keys::generate(if kek { "kek" } else { "key" }) {
            Ok((id, material)) => {
                let material = material.as_str();
                if kek {
                    println!(
                        "# A local KEK for envelope encryption. Keep the material out of version\n\
                         # control: material = \"${{SEALGATE_KEK}}\" or material_file = \"...\" (mode 0600).\n\
                         [codec.kms.local]\nprovider = \"local\"\n\n[[codec.kms.local.keys]]\n\
                         id = \"{id}\"\nmaterial = \"{material}\"\n\n\
                         # and in the policy that should use it:\n\
                         # [codec.policies.default]\n# active_key = \"{id}\""
                    );
                } else {
                    println!("[[codec.keys]]\nid = \"{id}\"\nmaterial = \"{material}\"");
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("sealgate: {e}");
                ExitCode::FAILURE
            }
        },
        Command::Schema {
            command: SchemaCommand::Diff { file, json },
        } => schema_diff(&file, json),
        Command::CheckConfig { config, json } => {
            let (c, pipeline) = match load_codec(&config) {
                Ok(ok) => ok,
                Err(code) => return code,
            };
            for w in &c.warnings {
                eprintln!("sealgate: warning: {w}");
            }
            if let Err(e) = sealgate::proxy::classify::check(&c.proxy) {
                eprintln!("sealgate: {}: {e}", config.display());
                return ExitCode::from(EXIT_BAD_CONFIG as u8);
            }
            let upstreams = c.effective_upstreams();
            if json {
                let out = serde_json::json!({
                    "config": config.display().to_string(),
                    "listen": c.listen.to_string(),
                    "encryption": c.codec.encryption,
                    "upstreams": upstreams,
                });
                println!("{out:#}");
                return ExitCode::SUCCESS;
            }
            println!(
                "{}: ok (listen {}, encryption {})",
                config.display(),
                c.listen,
                if c.codec.encryption { "on" } else { "off" }
            );
            for u in &upstreams {
                let mut tls = u.tls.clone();
                if let Some(n) = &u.server_name {
                    tls.push_str(&format!(", server name {n}"));
                }
                if u.tls != "plaintext (h2c)" && u.server_ca.is_none() {
                    tls.push_str(", system CA roots");
                }
                let key = if u.api_key_set { ", API key" } else { "" };
                println!("  upstream {}: {} ({tls}{key})", u.name, u.address);
                for (setting, from) in &u.origins {
                    println!("    {setting}: from {from}");
                }
            }
            for p in pipeline.current().policies.all() {
                println!("  policy {}", p.describe());
            }
            ExitCode::SUCCESS
        }
    }
}

/// Logs to stderr (human text, or JSON lines), plus spans to OTLP when a
/// trace pipeline is configured.
fn init_logs(json: bool, tracer: Option<&opentelemetry_sdk::trace::SdkTracerProvider>) {
    use std::io::IsTerminal;

    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::{layer::SubscriberExt, util::SubscriberInitExt};

    let filter = tracing_subscriber::EnvFilter::try_from_env("SEALGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person at a terminal, never into log files.
    let ansi = std::io::stderr().is_terminal();
    let text = (!json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(ansi)
    });
    let json_lines = json.then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
    });
    let otel = tracer.map(|t| tracing_opentelemetry::layer().with_tracer(t.tracer("sealgate")));
    tracing_subscriber::registry()
        .with(filter)
        .with(text)
        .with(json_lines)
        .with(otel)
        .init();
}

/// glibc's malloc hands the top of a heap back to the kernel once more
/// than 128 KiB is free there; a steady run of 64 KiB messages then has
/// the kernel fault in and zero the same pages again on every call
/// (`clear_page_erms` in the profile). glibc raises that bound for good
/// (to twice the block's size) the first time it frees a block it had
/// mapped on its own, one over 128 KiB: one such block at start does it.
/// Blocks over 1 MiB are still mapped and unmapped on their own.
/// Elsewhere this is one allocation and nothing more.
fn settle_allocator() {
    let block: Vec<u8> = Vec::with_capacity(1 << 20);
    drop(std::hint::black_box(block));
}

fn run(path: &std::path::Path, log_json: bool) -> ExitCode {
    let config = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    settle_allocator();
    // With per-core serving, gRPC calls run on threads of their own; this
    // runtime keeps the control plane (reloads, admin, Codec Server).
    let workers = match config.proxy.runtime {
        sealgate::config::Runtime::PerCore => 1,
        sealgate::config::Runtime::WorkStealing => config.proxy.threads,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sealgate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let tracer = match sealgate::telemetry::tracer_provider(&config.telemetry) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("sealgate: {e}");
                return ExitCode::from(EXIT_BAD_CONFIG as u8);
            }
        };
        init_logs(log_json, tracer.as_ref());
        let code = serve(path, config).await;
        if let Some(t) = tracer {
            // Flush the spans still in the batch.
            let _ = t.shutdown();
        }
        code
    })
}

async fn serve(path: &std::path::Path, config: Config) -> ExitCode {
    {
        let app = match App::build(config) {
            Ok(app) => app,
            Err(e) => {
                eprintln!("sealgate: {e}");
                return ExitCode::from(EXIT_BAD_CONFIG as u8);
            }
        };
        let shutdown = match shutdown_signal() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("sealgate: cannot watch SIGTERM/SIGINT: {e}");
                return ExitCode::FAILURE;
            }
        };
        // SIGHUP is watched from before "ready" too: a reload signal is never fatal.
        let hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("sealgate: cannot watch SIGHUP: {e}");
                return ExitCode::FAILURE;
            }
        };
        let listeners = match app.bind().await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("sealgate: {e}");
                return ExitCode::FAILURE;
            }
        };
        let c = app.config();
        let addr = |l: Option<&tokio::net::TcpListener>| {
            l.and_then(|l| l.local_addr().ok())
                .map_or_else(|| "off".to_string(), |a| a.to_string())
        };
        tracing::info!(
            listen = %addr(Some(&listeners.proxy)),
            admin = %addr(listeners.admin.as_ref()),
            codec_server = %addr(listeners.codec_server.as_ref()),
            upstream = %c.upstream,
            encryption = c.codec.encryption,
            compression = c.codec.compression,
            "sealgate ready"
        );
        let info = app.proxy().schema_info();
        tracing::info!(
            source = %info.source,
            api = %info.api,
            digest = %info.digest,
            "Temporal API schema"
        );
        for p in app.proxy().codec().current().policies.all() {
            tracing::info!(policy = %p.describe(), "key policy");
        }
        for w in &c.warnings {
            tracing::warn!("{w}");
        }
        let reloader = app.reloader(path);
        let watcher =
            tokio::spawn(reloader.watch(hangup, c.reload_check_interval, std::future::pending()));
        let drained = app.serve(listeners, shutdown).await;
        watcher.abort();
        match drained {
            Drained::Clean => {
                tracing::info!("drained; bye");
                ExitCode::SUCCESS
            }
            Drained::GraceExpired => {
                tracing::warn!("grace period over with calls still in flight; exiting");
                ExitCode::SUCCESS
            }
            Drained::Failed(reason) => {
                tracing::error!("cannot serve: {reason}");
                ExitCode::FAILURE
            }
        }
    }
}

/// Watches SIGTERM and SIGINT from now on (registered before "ready" is
/// logged, so a signal sent right after it is never fatal); the returned
/// future resolves on the first of them.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = int.recv() => tracing::info!("SIGINT"),
        }
    })
}

/// Loads a configuration, printing every problem and mapping failure to exit 64.
fn load(path: &std::path::Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprint!("sealgate: {e}");
        ExitCode::from(EXIT_BAD_CONFIG as u8)
    })
}

/// Loads a configuration and builds its key policies (exit 64 on failure).
fn load_codec(path: &std::path::Path) -> Result<(Config, sealgate::codec::Pipeline), ExitCode> {
    let config = load(path)?;
    let store = config
        .external_storage
        .clone()
        .map(|s| std::sync::Arc::new(sealgate::storage::Store::new(s)));
    match sealgate::pipeline(&config.codec) {
        Ok(p) => Ok((config, p.with_store(store))),
        Err(e) => {
            eprintln!("sealgate: {}: [codec]: {e}", path.display());
            Err(ExitCode::from(EXIT_BAD_CONFIG as u8))
        }
    }
}

fn schema_diff(file: &std::path::Path, json: bool) -> ExitCode {
    use sealgate::schema::{Descriptors, diff};
    let diff = Descriptors::embedded()
        .and_then(|base| Ok((base, Descriptors::load(file)?)))
        .and_then(|(base, file)| diff::diff(&base, &file));
    let diff = match diff {
        Ok(d) => d,
        Err(e) => {
            eprintln!("sealgate: {}: {e}", file.display());
            return ExitCode::from(64);
        }
    };
    if json {
        match serde_json::to_string_pretty(&diff) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("sealgate: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", diff.render());
    }
    if diff.has_request_gaps() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn payloads(direction: Direction, config: &std::path::Path, namespace: &str) -> ExitCode {
    let pipeline = match load_codec(config) {
        Ok((_, p)) => p,
        Err(code) => return code,
    };
    let mut input = Vec::new();
    if let Err(e) = std::io::stdin().read_to_end(&mut input) {
        eprintln!("sealgate: reading stdin: {e}");
        return ExitCode::FAILURE;
    }
    // Envelope policies may need the KMS: one small runtime for its calls.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("sealgate: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out = runtime.block_on(async {
        // The gateway's own KMS round trip: a data key that is not ready
        // (encode) or not cached (decode) is fetched, then run once more.
        let mut session = pipeline.session(namespace);
        type Failed = Box<dyn std::error::Error + Send + Sync>;
        let transform = |v: &mut dyn PayloadVisitor| -> Result<Vec<u8>, Failed> {
            Ok(json::transform(&input, |p| v.payload(p))?)
        };
        let out = match direction {
            Direction::Encode => session.encode_with(|enc| transform(enc)).await,
            Direction::Decode => session.decode_with(|dec| transform(dec)).await,
        };
        out.map_err(|e| e.to_string())
    });
    match out {
        Ok(mut out) => {
            out.push(b'\n');
            match std::io::stdout().write_all(&out) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("sealgate: writing stdout: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("sealgate: {e}");
            ExitCode::from(EXIT_BAD_INPUT)
        }
    }
}
