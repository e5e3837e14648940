//! A small HTTP(S) GET for the JWKS, bounded in time and size.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Uri, header};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::{
    errors::error_chain,
    tls::{Connector, TlsSettings},
};

const LIMIT: usize = 1 << 20;
const TIMEOUT: Duration = Duration::from_secs(10);

/// GETs `url` and returns the body of a 200 answer.
pub(crate) async fn get(url: &str) -> Result<Bytes, String> {
    tokio::time::timeout(TIMEOUT, get_inner(url))
        .await
        .map_err(|_| format!("no answer within {TIMEOUT:?}"))?
}

async fn get_inner(url: &str) -> Result<Bytes, String> {
    let uri: Uri = url.parse().map_err(|e| format!("bad URL: {e}"))?;
    let https = uri.scheme_str() == Some("https");
    let host = uri.host().ok_or("URL without a host")?.to_string();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = format!("{host}:{port}");
    let tcp = TcpStream::connect(&authority)
        .await
        .map_err(|e| e.to_string())?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let req = Request::get(path)
        .header(header::HOST, authority.as_str())
        .header(header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let resp = if https {
        let connector = Connector::new(&TlsSettings::default(), &authority, &[b"http/1.1"])
            .map_err(|e| e.to_string())?;
        let tls = connector.connect(tcp).await.map_err(|e| error_chain(&e))?;
        send(TokioIo::new(tls), req).await?
    } else {
        send(TokioIo::new(tcp), req).await?
    };
    if !resp.status().is_success() {
        return Err(format!("HTTP {}", resp.status()));
    }
    Limited::new(resp.into_body(), LIMIT)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| format!("reading the body: {e}"))
}

async fn send<I>(
    io: I,
    req: Request<Empty<Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| error_chain(&e))?;
    tokio::spawn(conn);
    sender.send_request(req).await.map_err(|e| error_chain(&e))
}
