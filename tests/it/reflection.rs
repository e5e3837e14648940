//! gRPC server reflection answered by the gateway itself (v1 and v1alpha),
//! as grpcurl and ghz use it.

use crate::support;

use prost::Message;
use prost_types::FileDescriptorProto;
use support::net::{FakeUpstream, Gateway, Reply, config_text, parse_config};

const WS: &str = "temporal.api.workflowservice.v1.WorkflowService";

/// Service names listed, and the method names of `WS` found through
/// FileContainingSymbol, for one reflection version.
macro_rules! reflect {
    ($pb:path, $addr:expr) => {{
        use pb::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        use $pb as pb;
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", $addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut client = ServerReflectionClient::new(channel);
        let reqs = vec![
            ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            },
            ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::FileContainingSymbol(WS.into())),
            },
        ];
        let mut stream = client
            .server_reflection_info(tokio_stream::iter(reqs))
            .await
            .unwrap()
            .into_inner();
        let mut services = Vec::new();
        let mut methods = Vec::new();
        while let Some(resp) = stream.message().await.unwrap() {
            match resp.message_response.unwrap() {
                MessageResponse::ListServicesResponse(l) => {
                    services = l.service.into_iter().map(|s| s.name).collect();
                }
                MessageResponse::FileDescriptorResponse(f) => {
                    for bytes in f.file_descriptor_proto {
                        let file = FileDescriptorProto::decode(bytes.as_slice()).unwrap();
                        for s in file
                            .service
                            .iter()
                            .filter(|s| s.name() == "WorkflowService")
                        {
                            methods.extend(s.method.iter().map(|m| m.name().to_string()));
                        }
                    }
                }
                other => panic!("unexpected answer {other:?}"),
            }
        }
        (services, methods)
    }};
}

#[tokio::test]
async fn reflection_lists_the_allowed_services_and_describes_their_methods() {
    let up = FakeUpstream::start(|_| Reply::default()).await;
    let gw = Gateway::start(parse_config(&config_text(up.addr, ""))).await;
    let (services, methods) = reflect!(tonic_reflection::pb::v1, gw.addr);
    assert!(services.contains(&WS.to_string()), "{services:?}");
    assert!(services.contains(&"temporal.api.operatorservice.v1.OperatorService".to_string()));
    assert!(
        !services.iter().any(|s| s.contains("testservice")),
        "only what the gateway forwards: {services:?}"
    );
    assert!(methods.contains(&"StartWorkflowExecution".to_string()));
    assert_eq!(methods.len(), 123, "every WorkflowService method");

    let (services_alpha, methods_alpha) = reflect!(tonic_reflection::pb::v1alpha, gw.addr);
    assert!(services_alpha.contains(&WS.to_string()));
    assert_eq!(methods_alpha, methods);
    assert!(up.requests().is_empty(), "reflection never goes upstream");

    // Turned off, reflection is just another service outside the allowlist.
    let gw = Gateway::start(parse_config(&config_text(
        up.addr,
        "[proxy]\nreflection = false\n",
    )))
    .await;
    let client = support::net::Client::connect(gw.addr).await;
    let a = client
        .call(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            &[],
            &[],
            false,
        )
        .await;
    assert_eq!(a.status(), 12);
}
