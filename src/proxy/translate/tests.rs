use super::*;

#[test]
fn names_map_both_ways() {
    let t = Translation {
        prefix: "acme-".into(),
        suffix: ".a1b2c".into(),
        overrides: vec![("billing".into(), "finance-prod.a1b2c".into())],
    };
    assert_eq!(t.to_upstream("orders"), "acme-orders.a1b2c");
    assert_eq!(t.to_local("acme-orders.a1b2c"), "orders");
    assert_eq!(t.to_upstream("billing"), "finance-prod.a1b2c");
    assert_eq!(t.to_local("finance-prod.a1b2c"), "billing");
    // Names outside the scheme come back unchanged; empty stays empty.
    assert_eq!(t.to_local("someone-else"), "someone-else");
    assert_eq!(t.to_upstream(""), "");
    assert_eq!(Translation::default().to_local("x"), "x");
}
