"""Starting and stopping the real parts: a Temporal dev server, sealgate,
nginx. Every process is started with its own log file under .work/ and is
stopped by PID (SIGTERM, then SIGKILL). Ports are ephemeral."""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / ".work"
VENV_BIN = ROOT / ".venv" / "bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: "Proc", timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}; log:\n{proc.tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{proc.name} did not listen on {port} within {timeout}s; log:\n{proc.tail()}")


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log: Path

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def stop(self, grace: float = 15.0) -> int | None:
        """SIGTERM, wait, then SIGKILL. Returns the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        return self.popen.returncode


def start(name: str, cmd: list[str], workdir: Path, env: dict | None = None) -> Proc:
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / f"{name}.log"
    out = open(log, "wb")
    full_env = dict(os.environ)
    if env is not None:
        full_env.update(env)
    popen = subprocess.Popen(
        cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=full_env, cwd=workdir
    )
    return Proc(name, popen, log)


def temporal_cli() -> str:
    return str(VENV_BIN / "temporal")


@dataclass
class TemporalServer:
    proc: Proc
    port: int

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def start_temporal(
    workdir: Path,
    search_attributes: dict[str, str] | None = None,
    ui_port: int | None = None,
    codec_endpoint: str | None = None,
    namespaces: list[str] | None = None,
    dynamic_config: dict[str, str] | None = None,
) -> TemporalServer:
    """A dev server; headless unless `ui_port` is given (then the Web UI
    listens there, using `codec_endpoint` as its remote codec if given).
    `dynamic_config` values are passed as `--dynamic-config-value KEY=VALUE`
    (VALUE in JSON, e.g. "true")."""
    port = free_port()
    ui = ["--headless"] if ui_port is None else ["--ui-port", str(ui_port), "--ui-ip", "127.0.0.1"]
    if codec_endpoint:
        ui += ["--ui-codec-endpoint", codec_endpoint]
    cmd = [
        temporal_cli(), "server", "start-dev",
        *ui,
        "--ip", "127.0.0.1",
        "--port", str(port),
        "--db-filename", str(workdir / "temporal.db"),
        "--log-level", "warn",
    ]
    for k, v in (search_attributes or {}).items():
        cmd += ["--search-attribute", f"{k}={v}"]
    for ns in namespaces or []:
        cmd += ["--namespace", ns]
    for k, v in (dynamic_config or {}).items():
        cmd += ["--dynamic-config-value", f"{k}={v}"]
    proc = start("temporal", cmd, workdir)
    wait_for_port(port, proc, timeout=90)
    # The port opens before the default namespace exists: wait until it answers.
    deadline = time.monotonic() + 60
    while True:
        r = subprocess.run(
            [temporal_cli(), "operator", "namespace", "describe", "default", "--address", f"127.0.0.1:{port}"],
            capture_output=True,
        )
        if r.returncode == 0:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"temporal dev server not ready:\n{proc.tail()}\n{r.stderr.decode()}")
        time.sleep(0.3)
    return TemporalServer(proc, port)


def start_moto(workdir: Path) -> tuple["Proc", str]:
    """A moto_server (AWS KMS and S3 emulator) on a free loopback port:
    the process and its endpoint URL."""
    port = free_port()
    proc = start("moto", [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], workdir)
    wait_for_port(port, proc, timeout=60)
    return proc, f"http://127.0.0.1:{port}"


def machine() -> str:
    """This machine, for benchmark reports: cores, CPU model, kernel."""
    import platform

    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}, {platform.system()} {platform.release()}"


def cli_version() -> str:
    r = subprocess.run([temporal_cli(), "--version"], capture_output=True, text=True, timeout=30)
    return r.stdout.strip()


def sealgate_bin() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return Path(os.environ.get("SEALGATE_BIN", target / "debug" / "sealgate"))


@dataclass
class Sealgate:
    proc: Proc
    port: int
    config: Path

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


def sealgate_config(workdir: Path, body: str) -> Path:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "sealgate.toml"
    path.write_text(body)
    return path


def generated_codec_section(encode_failures: bool = True) -> str:
    """A [codec] section with a key made now (never committed); failure text
    is encoded, as by default, unless `encode_failures` is False."""
    out = subprocess.run([str(sealgate_bin()), "keygen"], capture_output=True, check=True, text=True).stdout
    key_id = out.split('"')[1]
    return (
        "[codec]\ncompression = true\nencryption = true\n"
        f"encode_failure_attributes = {'true' if encode_failures else 'false'}\n"
        f'active_key = "{key_id}"\n{out}'
    )


def start_sealgate(
    workdir: Path,
    config: Path,
    env: dict | None = None,
    upstream: str | None = None,
    codec_port: int | None = None,
) -> Sealgate:
    # A port free_port() found can be taken by someone else before sealgate
    # binds it; then sealgate says so and exits, and we try fresh ports.
    for attempt in range(3):
        port = free_port()
        e = {
            "SEALGATE_LISTEN": f"127.0.0.1:{port}",
            "SEALGATE_CODEC_SERVER_LISTEN": f"127.0.0.1:{codec_port or free_port()}",
            "SEALGATE_ADMIN_LISTEN": f"127.0.0.1:{free_port()}",
            "SEALGATE_LOG": "info",
        }
        if upstream is not None:
            e["SEALGATE_UPSTREAM"] = upstream
        if env:
            e.update(env)
        proc = start("sealgate", [str(sealgate_bin()), "run", "--config", str(config)], workdir, e)
        try:
            wait_for_port(port, proc, timeout=30)
        except RuntimeError:
            # Retry with fresh ports, unless the taken one is the Codec Server
            # port the caller chose (its Web UI was started pointing at it).
            tail = proc.tail()
            taken_fixed = codec_port is not None and f"127.0.0.1:{codec_port}:" in tail
            if attempt < 2 and "Address already in use" in tail and not taken_fixed:
                continue
            raise
        if codec_port:
            wait_for_port(codec_port, proc, timeout=30)
        return Sealgate(proc, port, config)
    raise RuntimeError("unreachable")


# --- test PKI, generated at test time with `cryptography` -----------------------


@dataclass
class Pki:
    dir: Path
    files: dict[str, Path] = field(default_factory=dict)


def generate_pki(dir: Path, server_names: list[str]) -> Pki:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    import ipaddress

    dir.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def key():
        return ec.generate_private_key(ec.SECP256R1())

    ca_key = key()
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("sealgate e2e CA"))
        .issuer_name(name("sealgate e2e CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(cn: str, sans: list, usage):
        k = key()
        b = (
            x509.CertificateBuilder()
            .subject_name(name(cn))
            .issuer_name(ca.subject)
            .public_key(k.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        )
        if sans:
            b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return k, b.sign(ca_key, hashes.SHA256())

    sans = []
    for n in server_names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    server_key, server = leaf(server_names[0], sans, ExtendedKeyUsageOID.SERVER_AUTH)
    client_key, client = leaf("worker", [], ExtendedKeyUsageOID.CLIENT_AUTH)

    pki = Pki(dir)

    def write(name: str, data: bytes) -> None:
        p = dir / name
        p.write_bytes(data)
        pki.files[name] = p

    pem = serialization.Encoding.PEM
    pkcs8 = serialization.PrivateFormat.PKCS8
    nope = serialization.NoEncryption()
    write("ca.pem", ca.public_bytes(pem))
    write("server.pem", server.public_bytes(pem))
    write("server-key.pem", server_key.private_bytes(pem, pkcs8, nope))
    write("client.pem", client.public_bytes(pem))
    write("client-key.pem", client_key.private_bytes(pem, pkcs8, nope))
    return pki


# --- nginx as the Temporal Cloud stand-in -----------------------------------------


def nginx_bin() -> str | None:
    for candidate in ("nginx", "/usr/sbin/nginx"):
        found = shutil.which(candidate)
        if found:
            return found
    return None


@dataclass
class Nginx:
    proc: Proc
    mtls_port: int
    api_key_port: int


def start_nginx(workdir: Path, pki: Pki, upstream_port: int, api_key: str) -> Nginx:
    binary = nginx_bin()
    if binary is None:
        raise RuntimeError(
            "nginx is not installed: scripts/test installs it with apt-get when run as root; "
            "otherwise install Debian's nginx package"
        )
    mtls_port, api_port = free_port(), free_port()
    f = pki.files
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""
daemon off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
  # The request line, and the metadata a client added (grpc_meta).
  log_format calls '$request team=$http_x_team region=$http_x_region';
  access_log {workdir}/nginx-access.log calls;
  client_body_temp_path {workdir}/nginx-body;
  proxy_temp_path {workdir}/nginx-proxy;
  fastcgi_temp_path {workdir}/nginx-fastcgi;
  uwsgi_temp_path {workdir}/nginx-uwsgi;
  scgi_temp_path {workdir}/nginx-scgi;
  ssl_certificate {f['server.pem']};
  ssl_certificate_key {f['server-key.pem']};
  grpc_read_timeout 120s;
  grpc_send_timeout 120s;
  client_max_body_size 0;

  # Temporal Cloud with mTLS: a client certificate from our CA is required.
  server {{
    listen 127.0.0.1:{mtls_port} ssl http2;
    ssl_client_certificate {f['ca.pem']};
    ssl_verify_client on;
    location / {{ grpc_pass grpc://127.0.0.1:{upstream_port}; }}
  }}

  # Temporal Cloud with API keys: TLS, and the key in `authorization`.
  server {{
    listen 127.0.0.1:{api_port} ssl http2;
    location / {{
      if ($http_authorization != "Bearer {api_key}") {{ return 401; }}
      grpc_pass grpc://127.0.0.1:{upstream_port};
    }}
  }}
}}
"""
    )
    proc = start("nginx", [binary, "-c", str(conf), "-p", str(workdir)], workdir)
    wait_for_port(mtls_port, proc)
    wait_for_port(api_port, proc)
    return Nginx(proc, mtls_port, api_port)


if __name__ == "__main__":
    sys.exit("this module is imported by the e2e tests and the demo")


def create_nexus_endpoint(server: "TemporalServer", task_queue: str, prefix: str = "e2e-nexus") -> str:
    """A Nexus endpoint targeting `task_queue` in `default`, created on the
    dev server directly (an operator's act, not a worker's); its name."""
    import uuid

    name = f"{prefix}-{uuid.uuid4().hex[:12]}"
    r = subprocess.run(
        [
            temporal_cli(), "operator", "nexus", "endpoint", "create",
            "--name", name,
            "--target-namespace", "default",
            "--target-task-queue", task_queue,
            "--address", server.address,
        ],
        capture_output=True, text=True, timeout=30,
    )
    assert r.returncode == 0, f"endpoint create failed: {r.stdout}\n{r.stderr}"
    return name
