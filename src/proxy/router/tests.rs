use super::*;

#[test]
fn globs() {
    assert!(glob("prod-*", "prod-orders"));
    assert!(glob("*", "anything"));
    assert!(glob("a?c", "abc") && !glob("a?c", "abbc"));
    assert!(glob("*-prod", "orders-prod") && !glob("*-prod", "orders-prod2"));
    assert!(glob("orders", "orders") && !glob("orders", "orders2"));
}

#[test]
fn only_dns_safe_namespaces_go_into_addresses() {
    assert!(dns_safe("orders-prod.a1b2c"));
    for bad in ["", "a..b", ".a", "evil.com:443", "a/b", "a@b", "a b"] {
        assert!(!dns_safe(bad), "{bad:?}");
    }
}
