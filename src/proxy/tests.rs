use super::*;
use crate::{codec::CodecError, grpc::frame::FrameError, rewrite::RewriteError};

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
                allowed: "y".into(),
            },
            grpc::Code::Unimplemented,
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
