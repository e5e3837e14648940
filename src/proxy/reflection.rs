//! gRPC server reflection, v1 and v1alpha, answered by sealgate itself from
//! the embedded Temporal descriptor set: grpcurl, ghz and other tools work
//! against the gateway with no proto files. Only the services the gateway
//! forwards are advertised.

use std::convert::Infallible;

use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tonic_reflection::server::Builder;
use tower::{ServiceExt, util::BoxCloneSyncService};

use crate::{
    schema::Schema,
    upstream::{Body, BoxError},
};

pub(crate) const V1: &str = "grpc.reflection.v1.ServerReflection";
pub(crate) const V1ALPHA: &str = "grpc.reflection.v1alpha.ServerReflection";

type Service = BoxCloneSyncService<Request<Incoming>, Response<Body>, Infallible>;

/// The two reflection services, ready to answer.
#[derive(Clone)]
pub struct Reflection {
    v1: Service,
    v1alpha: Service,
}

impl std::fmt::Debug for Reflection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reflection")
    }
}

fn boxed<S>(svc: S) -> Service
where
    S: tower::Service<
            Request<Incoming>,
            Response = Response<tonic::body::Body>,
            Error = Infallible,
        > + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    BoxCloneSyncService::new(svc.map_response(|r: Response<tonic::body::Body>| {
        r.map(|b| b.map_err(|s| Box::new(s) as BoxError).boxed_unsync())
    }))
}

impl Reflection {
    /// Advertises those of `services` that the descriptor set defines.
    pub fn new(
        schema: &Schema,
        descriptors: &[u8],
        services: &[String],
    ) -> Result<Reflection, String> {
        let builder = || {
            let mut b = Builder::configure().register_encoded_file_descriptor_set(descriptors);
            for s in services {
                if schema.methods().any(|m| &*m.service == s.as_str()) {
                    b = b.with_service_name(s.clone());
                }
            }
            b
        };
        let fail = |e: tonic_reflection::server::Error| format!("server reflection: {e}");
        Ok(Reflection {
            v1: boxed(builder().build_v1().map_err(fail)?),
            v1alpha: boxed(builder().build_v1alpha().map_err(fail)?),
        })
    }

    /// Answers a reflection call for `service` (`V1` or `V1ALPHA`).
    pub async fn serve(&self, service: &str, req: Request<Incoming>) -> Response<Body> {
        let svc = if service == V1 {
            self.v1.clone()
        } else {
            self.v1alpha.clone()
        };
        match svc.oneshot(req).await {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }
}
