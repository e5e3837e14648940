//! Test certificates, generated at test time: a CA, a server certificate,
//! and a client certificate, written under cargo's per-test temp dir.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

pub struct Pki {
    pub dir: PathBuf,
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub client_cert_pem: String,
    pub client_key_pem: String,
}

impl Pki {
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// A fresh CA with a server certificate for `server_names` and a client
/// certificate with common name `client`, also written to files in `dir`.
pub fn generate(dir: &Path, server_names: &[&str]) -> Pki {
    generate_with_clients(dir, server_names, &[]).0
}

/// As [`generate`], plus one client certificate per SAN in `client_sans`
/// (a DNS name, or a URI when it contains "://"): `(cert PEM, key PEM)`.
#[allow(dead_code)]
pub fn generate_with_clients(
    dir: &Path,
    server_names: &[&str],
    client_sans: &[&str],
) -> (Pki, Vec<(String, String)>) {
    std::fs::create_dir_all(dir).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "sealgate test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let server_key = KeyPair::generate().unwrap();
    let names: Vec<String> = server_names.iter().map(|s| s.to_string()).collect();
    let server = CertificateParams::new(names)
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();

    let client_key = KeyPair::generate().unwrap();
    let mut client_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    client_params
        .distinguished_name
        .push(DnType::CommonName, "worker");
    let client = client_params.signed_by(&client_key, &ca).unwrap();

    let pki = Pki {
        dir: dir.to_path_buf(),
        ca_pem: ca.pem(),
        server_cert_pem: server.pem(),
        server_key_pem: server_key.serialize_pem(),
        client_cert_pem: client.pem(),
        client_key_pem: client_key.serialize_pem(),
    };
    let clients = client_sans
        .iter()
        .map(|san| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
            let name = if san.contains("://") {
                rcgen::SanType::URI(rcgen::string::Ia5String::try_from(*san).unwrap())
            } else {
                rcgen::SanType::DnsName(rcgen::string::Ia5String::try_from(*san).unwrap())
            };
            params.subject_alt_names = vec![name];
            let cert = params.signed_by(&key, &ca).unwrap();
            (cert.pem(), key.serialize_pem())
        })
        .collect();
    for (name, pem) in [
        ("ca.pem", &pki.ca_pem),
        ("server.pem", &pki.server_cert_pem),
        ("server-key.pem", &pki.server_key_pem),
        ("client.pem", &pki.client_cert_pem),
        ("client-key.pem", &pki.client_key_pem),
    ] {
        std::fs::write(dir.join(name), pem).unwrap();
    }
    (pki, clients)
}
