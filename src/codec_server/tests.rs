use serde_json::json;

use super::{Op, parse_path};
use crate::auth::claim_has;

#[test]
fn routes() {
    assert_eq!(parse_path("/decode"), Some((None, Op::Decode, false)));
    assert_eq!(parse_path("/encode"), Some((None, Op::Encode, false)));
    assert_eq!(parse_path("/download"), Some((None, Op::Decode, true)));
    assert_eq!(
        parse_path("/my-ns/decode"),
        Some((Some("my-ns"), Op::Decode, false))
    );
    assert!(super::preserve_refs(Some("preserveStorageRefs=true")));
    assert!(super::preserve_refs(Some("a=1&preserveStorageRefs=TRUE")));
    assert!(!super::preserve_refs(Some("preserveStorageRefs=false")));
    assert!(!super::preserve_refs(None));
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
