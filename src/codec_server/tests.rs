use serde_json::json;

use super::{Op, parse_path};
use crate::auth::claim_has;

#[test]
fn routes() {
    assert_eq!(parse_path("/decode"), Some((None, Op::Decode)));
    assert_eq!(parse_path("/encode"), Some((None, Op::Encode)));
    assert_eq!(
        parse_path("/my-ns/decode"),
        Some((Some("my-ns"), Op::Decode))
    );
    assert_eq!(parse_path("/a/b/decode"), None);
    assert_eq!(parse_path("/decrypt"), None);
    assert_eq!(parse_path(""), None);
}

#[test]
fn claim_rules() {
    let v = |j: serde_json::Value| Some(j);
    assert!(claim_has(v(json!("codec:decode")).as_ref(), "codec:decode"));
    assert!(claim_has(
        v(json!("openid codec:decode")).as_ref(),
        "codec:decode"
    ));
    assert!(claim_has(
        v(json!(["a", "codec:decode"])).as_ref(),
        "codec:decode"
    ));
    assert!(!claim_has(
        v(json!(["codec:decode-all"])).as_ref(),
        "codec:decode"
    ));
    assert!(!claim_has(v(json!(1)).as_ref(), "1"));
    assert!(!claim_has(None, "x"));
}
