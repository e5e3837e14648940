use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::HeaderValue;

use super::{frame::*, *};

#[test]
fn frames_split_and_rebuild() {
    let mut body = BytesMut::new();
    push(&mut body, b"one");
    push(&mut body, b"");
    let frames = split(body.freeze(), 10).unwrap();
    assert_eq!(frames.len(), 2);
    assert_eq!(frames[0].message.as_ref(), b"one");
    assert!(frames[1].message.is_empty());
    assert_eq!(split(Bytes::new(), 10).unwrap(), vec![]);
}

#[test]
fn frame_errors() {
    assert_eq!(
        split(Bytes::from_static(&[0, 0, 0, 0, 20]), 10),
        Err(FrameError::TooLarge { len: 20, limit: 10 })
    );
    assert_eq!(
        split(Bytes::from_static(&[0, 0, 0]), 10),
        Err(FrameError::Truncated { missing: 2 })
    );
    assert_eq!(
        split(Bytes::from_static(&[0, 0, 0, 0, 3, 1]), 10),
        Err(FrameError::Truncated { missing: 2 })
    );
    assert_eq!(
        split(Bytes::from_static(&[2, 0, 0, 0, 0]), 10),
        Err(FrameError::BadFlag(2))
    );
}

#[test]
fn timeouts_parse() {
    let t = |s: &str| parse_timeout(&HeaderValue::from_str(s).unwrap());
    assert_eq!(t("300m"), Some(Duration::from_millis(300)));
    assert_eq!(t("5S"), Some(Duration::from_secs(5)));
    assert_eq!(t("2M"), Some(Duration::from_secs(120)));
    assert_eq!(t("1H"), Some(Duration::from_secs(3600)));
    assert_eq!(t("10u"), Some(Duration::from_micros(10)));
    assert_eq!(t("7n"), Some(Duration::from_nanos(7)));
    for bad in ["", "5", "S", "5x", "123456789S", "-1S", "+5S", " 5S"] {
        assert_eq!(t(bad), None, "{bad}");
    }
}

#[test]
fn status_details_round_trip_and_messages_are_percent_encoded() {
    let mut h = http::HeaderMap::new();
    set_status_details(&mut h, b"\x08\x03\x12\x01x");
    assert_eq!(status_details(&h).unwrap().unwrap(), b"\x08\x03\x12\x01x");
    // Padded base64 is accepted too.
    h.insert(GRPC_STATUS_DETAILS, HeaderValue::from_static("CAM="));
    assert_eq!(status_details(&h).unwrap().unwrap(), b"\x08\x03");
    assert_eq!(percent_encode("50% off\n"), "50%25 off%0A");
    assert_eq!(percent_encode("ünï"), "%C3%BCn%C3%AF");
    let r: http::Response<()> = status_response(Code::Unavailable, "down");
    assert_eq!(r.headers()[GRPC_STATUS], "14");
    assert_eq!(r.headers()[GRPC_MESSAGE], "down");
}
