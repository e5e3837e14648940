//! Remote-codec JSON (`{"payloads":[{"metadata":{…},"data":"…"}]}`), as the
//! Codec Server and `sealgate payloads` read it.
//!
//! Properties: nothing panics; what `transform` writes, it reads back to the
//! same bytes (its output is canonical); a transform that changes nothing
//! keeps every payload.

use sealgate::codec::json;

pub(crate) fn run(data: &[u8]) {
    let Ok(out) = json::transform(data, |p| Ok(Some(p.to_vec()))) else {
        return;
    };
    let again = json::transform(&out, |p| Ok(Some(p.to_vec()))).expect("our own output parses");
    assert_eq!(again, out, "transform's output is canonical");
    let kept = json::transform(data, |_| Ok(None)).expect("it parsed once");
    assert_eq!(kept, out, "keeping a payload is re-emitting it");
}
