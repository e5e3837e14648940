use super::{classify::service_of, *};
use crate::{codec::CodecError, grpc, grpc::frame::FrameError, rewrite::RewriteError};

fn codec_failure() -> RewriteError {
    // A real codec failure surfaced through the rewriter.
    struct Fail;
    impl crate::rewrite::PayloadVisitor for Fail {
        fn payload(&mut self, _: &[u8]) -> Result<Option<Vec<u8>>, CodecError> {
            Err(CodecError::Random)
        }
    }
    let schema = Schema::embedded().unwrap();
    let id = schema
        .message_id("temporal.api.common.v1.Payloads")
        .unwrap();
    crate::rewrite::rewrite(&schema, id, &[0x0a, 0x00], &mut Fail).unwrap_err()
}

#[test]
fn failures_map_to_the_status_a_client_expects() {
    // Fail closed: a payload that cannot be encrypted is INTERNAL and says why.
    let e = ProxyError::Encode(codec_failure());
    assert_eq!(e.code(), grpc::Code::Internal);
    assert_eq!(e.side(), Side::Internal);
    let msg = e.to_string();
    assert!(
        msg.contains("nothing was sent upstream") && msg.contains("random"),
        "{msg}"
    );
    let resp = e.into_response();
    assert_eq!(resp.headers()["grpc-status"], "13");
    assert!(
        resp.headers()["grpc-message"]
            .to_str()
            .unwrap()
            .starts_with("sealgate: ")
    );

    let cases = [
        (
            ProxyError::RequestTooLarge { limit: 10 },
            grpc::Code::ResourceExhausted,
        ),
        (
            ProxyError::RequestFrame(FrameError::TooLarge { len: 11, limit: 10 }),
            grpc::Code::ResourceExhausted,
        ),
        (
            ProxyError::RequestFrame(FrameError::BadFlag(7)),
            grpc::Code::InvalidArgument,
        ),
        (
            ProxyError::ServiceNotAllowed {
                service: "x".into(),
            },
            grpc::Code::Unimplemented,
        ),
        (
            ProxyError::UnknownMethod {
                path: "/temporal.api.workflowservice.v1.WorkflowService/NewThing".into(),
                schema: "temporalio-protos 0.10.2".into(),
            },
            grpc::Code::Unimplemented,
        ),
        (
            ProxyError::RequestFrame(FrameError::Several(2)),
            grpc::Code::InvalidArgument,
        ),
        (
            ProxyError::Budget(budget::Exhausted {
                total: 1,
                wanted: 2,
            }),
            grpc::Code::ResourceExhausted,
        ),
        (
            ProxyError::Deadline {
                deadline: std::time::Duration::from_millis(5),
                upstream: "u".into(),
            },
            grpc::Code::DeadlineExceeded,
        ),
        (ProxyError::Decode(codec_failure()), grpc::Code::Internal),
    ];
    for (e, code) in cases {
        assert_eq!(e.code(), code, "{e}");
    }
}

#[test]
fn service_names_come_from_the_path() {
    assert_eq!(
        service_of("/temporal.api.workflowservice.v1.WorkflowService/StartWorkflowExecution"),
        "temporal.api.workflowservice.v1.WorkflowService"
    );
    assert_eq!(
        service_of("/grpc.health.v1.Health/Check"),
        "grpc.health.v1.Health"
    );
    assert_eq!(service_of("/"), "");
    assert_eq!(service_of("nothing"), "nothing");
}

#[test]
fn an_unknown_method_says_what_to_do() {
    let e = ProxyError::UnknownMethod {
        path: "/temporal.api.workflowservice.v1.WorkflowService/NewThing".into(),
        schema: Schema::embedded().unwrap().info().label(),
    };
    let m = e.to_string();
    assert!(
        m.contains("NewThing") && m.contains("temporalio-protos") && m.contains("upgrade"),
        "{m}"
    );
}

#[test]
fn a_non_grpc_content_type_is_415_with_a_grpc_status() {
    let e = ProxyError::Head(headers::HeadError::NoContentType);
    let resp = e.into_response();
    assert_eq!(resp.status(), http::StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(resp.headers()["grpc-status"], "3");
}

#[test]
fn services_are_classified_from_the_schema() {
    use classify::{ServiceClass, Services};
    let schema = Schema::embedded().unwrap();
    let names = Schema::embedded_namespaces().unwrap();
    let mut config = crate::config::Config::parse(
        "listen = \"127.0.0.1:0\"\nupstream = \"http://127.0.0.1:1\"\n[codec]\nencryption = false\ncompression = false\n",
        "t.toml",
        std::path::Path::new("."),
        &|_| None,
    )
    .unwrap()
    .proxy;
    let s = Services::new(&config, &schema, &names).unwrap();
    assert_eq!(
        s.class(crate::schema::WORKFLOW_SERVICE),
        Some(ServiceClass::Rewrite)
    );
    assert_eq!(
        s.class("temporal.api.operatorservice.v1.OperatorService"),
        Some(ServiceClass::Rewrite)
    );
    assert_eq!(s.class("grpc.health.v1.Health"), Some(ServiceClass::Plain));
    config.allowed_services.push("acme.Custom".into());
    let e = Services::new(&config, &schema, &names).unwrap_err();
    assert!(e.to_string().contains("opaque_services"), "{e}");
    config.opaque_services.push("acme.Custom".into());
    let s = Services::new(&config, &schema, &names).unwrap();
    assert_eq!(s.class("acme.Custom"), Some(ServiceClass::Opaque));
}
