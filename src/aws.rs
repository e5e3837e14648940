//! The AWS SDK's shared configuration for KMS and S3: the standard
//! credential chain (environment, shared config and credentials files, web
//! identity, ECS and EC2 metadata, `credential_process`), rustls with ring
//! for HTTPS, and the optional region, profile and endpoint overrides.

/// The SDK configuration both clients are built from.
pub(crate) async fn sdk_config(
    region: Option<&str>,
    profile: Option<&str>,
    endpoint: Option<&str>,
) -> aws_config::SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
            aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http);
    if let Some(r) = region {
        loader = loader.region(aws_config::Region::new(r.to_string()));
    }
    if let Some(p) = profile {
        loader = loader.profile_name(p);
    }
    if let Some(e) = endpoint {
        loader = loader.endpoint_url(e);
    }
    loader.load().await
}
