//! Bad input gets 400 with a JSON error naming the field, and nothing is
//! written.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

#[test]
fn bad_input_is_rejected_naming_the_field() {
    let api = WebApi::start();
    let customer = seed(&api);
    let good = serde_json::json!({
        "username": "bob", "domain": "example.com", "password": "bob-secret-1",
        "customer_id": customer, "max_concurrent_calls": 1
    });
    let cases: Vec<(&str, serde_json::Value)> = vec![
        ("username", serde_json::json!("bob@evil")),
        ("username", serde_json::json!("bo:b")),
        ("username", serde_json::json!("")),
        ("username", serde_json::json!(42)),
        ("domain", serde_json::json!("not a domain")),
        ("domain", serde_json::json!("unknown.example.org")),
        ("password", serde_json::json!("short")),
        ("customer_id", serde_json::json!(-3)),
        ("customer_id", serde_json::json!(99999)),
        ("max_concurrent_calls", serde_json::json!("many")),
        ("max_concurrent_calls", serde_json::json!(-1)),
        ("colour", serde_json::json!("blue")),
        ("id", serde_json::json!(7)),
    ];
    for (field, value) in cases {
        let mut body = good.clone();
        body[field] = value.clone();
        let r = api.post("/api/v1/subscribers", &body.to_string());
        assert_eq!(r.status, 400, "{field}={value}: {}", r.raw);
        assert_eq!(r.field(), field, "{field}={value}: {}", r.raw);
        assert!(
            r.body["error"].as_str().unwrap().contains(field),
            "{}",
            r.raw
        );
    }
    for missing in ["username", "domain", "password", "customer_id"] {
        let mut body = good.clone();
        body.as_object_mut().unwrap().remove(missing);
        let r = api.post("/api/v1/subscribers", &body.to_string());
        assert_eq!(r.status, 400, "without {missing}: {}", r.raw);
        assert_eq!(r.field(), missing, "{}", r.raw);
    }
    // Not JSON, not an object.
    for body in ["{\"username\": ", "[1, 2]", ""] {
        let r = api.post("/api/v1/subscribers", body);
        assert_eq!(r.status, 400, "{body:?}: {}", r.raw);
        assert_eq!(r.field(), "body");
    }
    // Domains, customers and query parameters.
    let r = api.post("/api/v1/domains", r#"{"name": "-bad-.com"}"#);
    assert_eq!((r.status, r.field()), (400, "name"), "{}", r.raw);
    let r = api.post("/api/v1/customers", r#"{"name": ""}"#);
    assert_eq!((r.status, r.field()), (400, "name"), "{}", r.raw);
    let r = api.post(
        "/api/v1/customers",
        r#"{"name": "x", "max_concurrent_calls": 1e9}"#,
    );
    assert_eq!(
        (r.status, r.field()),
        (400, "max_concurrent_calls"),
        "{}",
        r.raw
    );
    let r = api.get("/api/v1/subscribers?limit=0");
    assert_eq!((r.status, r.field()), (400, "limit"), "{}", r.raw);
    let r = api.get("/api/v1/customers?sort=name");
    assert_eq!((r.status, r.field()), (400, "sort"), "{}", r.raw);
    let r = api.put("/api/v1/customers/1", r#"{"id": 2, "name": "x"}"#);
    assert_eq!((r.status, r.field()), (400, "id"), "{}", r.raw);
    // Too large a body.
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(100_000));
    assert_eq!(api.post("/api/v1/customers", &big).status, 413);

    // Nothing of the above was stored.
    let r = api.get("/api/v1/subscribers");
    assert_eq!(r.body["total"], 0, "{}", r.raw);
    assert_eq!(api.get("/api/v1/domains").body["total"], 1);
    assert_eq!(api.get("/api/v1/customers").body["total"], 1);
}
