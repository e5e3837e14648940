use super::*;

fn peer(attrs: &[(&str, &str)]) -> Peer {
    Peer {
        subject_attrs: attrs
            .iter()
            .map(|(t, v)| (t.to_string(), v.to_string()))
            .collect(),
        ..Peer::default()
    }
}

#[test]
fn subject_rules_parse_as_attributes() {
    assert_eq!(
        parse_subject("CN=payments-worker, O=Acme").unwrap(),
        [
            ("CN".to_string(), "payments-worker".to_string()),
            ("O".to_string(), "Acme".to_string())
        ]
    );
    assert_eq!(
        parse_subject(r"cn=a\, b").unwrap(),
        [("CN".to_string(), "a, b".to_string())]
    );
    for bad in ["", "CN", "=x", "CN=", r"CN=x\"] {
        assert!(parse_subject(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn subjects_match_by_attribute_never_by_formatted_text() {
    let rule = parse_subject("CN=payments-worker, O=Acme").unwrap();
    assert!(peer(&[("CN", "payments-worker"), ("O", "Acme"), ("C", "DE")]).subject_matches(&rule));
    // One attribute whose value reads like the whole rule: no match.
    assert!(!peer(&[("CN", "payments-worker, O=Acme")]).subject_matches(&rule));
    // A missing attribute, or a value that differs: no match.
    assert!(!peer(&[("CN", "payments-worker")]).subject_matches(&rule));
    assert!(!peer(&[("CN", "payments-worker"), ("O", "Evil")]).subject_matches(&rule));
    // Patterns apply to values, anchored.
    let rule = parse_subject("CN=payments-*").unwrap();
    assert!(peer(&[("CN", "payments-1")]).subject_matches(&rule));
    assert!(!peer(&[("CN", "x-payments-1")]).subject_matches(&rule));
}

#[test]
fn one_bearer_parser_with_a_case_insensitive_scheme() {
    let h = |v: &str| {
        let mut m = http::HeaderMap::new();
        m.insert(http::header::AUTHORIZATION, v.parse().unwrap());
        m
    };
    for ok in ["Bearer t0k", "bearer t0k", "BEARER  t0k "] {
        assert_eq!(super::bearer_token(&h(ok)), Some("t0k"), "{ok}");
    }
    for bad in ["Basic t0k", "Bearer", "Bearer  ", "Bearert0k"] {
        assert_eq!(super::bearer_token(&h(bad)), None, "{bad}");
    }
    assert_eq!(super::bearer_token(&http::HeaderMap::new()), None);
}
