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

#[test]
fn an_override_another_local_name_reaches_by_suffix_is_a_collision() {
    let t = Translation {
        prefix: String::new(),
        suffix: ".a1b2c".into(),
        overrides: vec![("payments".into(), "payments-prod.a1b2c".into())],
    };
    assert_eq!(
        t.collisions(),
        [(
            "payments".to_string(),
            "payments-prod".to_string(),
            "payments-prod.a1b2c".to_string()
        )]
    );
    let fine = Translation {
        overrides: vec![("payments".into(), "payments.x9y8z".into())],
        ..t.clone()
    };
    assert!(fine.collisions().is_empty());
    // Two overrides onto one upstream name collide too.
    let twice = Translation {
        overrides: vec![
            ("a".into(), "shared.x9y8z".into()),
            ("b".into(), "shared.x9y8z".into()),
        ],
        ..t
    };
    assert_eq!(twice.collisions().len(), 1);
}
