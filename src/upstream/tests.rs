use super::*;

fn kind(e: &(dyn std::error::Error + 'static), tls: bool) -> FailureKind {
    FailureKind::of(e, tls)
}

#[test]
fn the_kind_comes_from_the_error_types_not_their_text() {
    use std::io::{Error, ErrorKind};
    assert_eq!(
        kind(&Error::from(ErrorKind::ConnectionRefused), false),
        FailureKind::Refused
    );
    assert_eq!(
        kind(&Error::from(ErrorKind::ConnectionReset), true),
        FailureKind::Closed
    );
    // tokio-rustls wraps rustls' error in an io::Error.
    let wrapped = |e: rustls::Error| Error::new(ErrorKind::InvalidData, e);
    assert_eq!(
        kind(
            &wrapped(rustls::Error::InvalidCertificate(
                rustls::CertificateError::UnknownIssuer
            )),
            true
        ),
        FailureKind::TlsVerification
    );
    assert_eq!(
        kind(
            &wrapped(rustls::Error::AlertReceived(
                rustls::AlertDescription::CertificateRequired
            )),
            true
        ),
        FailureKind::TlsClientCertificate
    );
    assert_eq!(
        kind(
            &wrapped(rustls::Error::InvalidMessage(
                rustls::InvalidMessage::InvalidContentType
            )),
            true
        ),
        FailureKind::WrongScheme
    );
    assert_eq!(
        kind(&wrapped(rustls::Error::DecryptError), true),
        FailureKind::Tls
    );
    // A message that merely mentions a cause is not that cause.
    assert_eq!(
        kind(&Error::other("Connection refused by policy"), false),
        FailureKind::Other
    );
}

#[test]
fn a_tls_server_answering_plaintext_http2_is_the_wrong_scheme() {
    let e = h2::Error::from(h2::Reason::FRAME_SIZE_ERROR);
    assert_eq!(kind(&e, false), FailureKind::WrongScheme);
    assert_eq!(kind(&e, true), FailureKind::Protocol);
}
