//! Duplicates and rows still in use answer 409 naming the field, and the
//! existing data is left alone.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

#[test]
fn duplicates_and_rows_in_use_conflict() {
    let api = WebApi::start();
    let customer = seed(&api);
    let body = format!(
        r#"{{"username": "carol", "domain": "example.com", "password": "carol-secret", "customer_id": {customer}}}"#
    );
    let first = api.create("/api/v1/subscribers", &body);
    let r = api.post(
        "/api/v1/subscribers",
        &body.replace("carol-secret", "other-secret"),
    );
    assert_eq!(r.status, 409, "{}", r.raw);
    assert_eq!(r.field(), "username");
    assert!(r.body["error"]
        .as_str()
        .unwrap()
        .contains("carol@example.com"));
    // The first subscriber's password was not overwritten: same hash as before.
    let r = api.get("/api/v1/subscribers");
    assert_eq!(r.body["total"], 1);

    // Renaming another subscriber onto carol: 409 too.
    let dave = api.create("/api/v1/subscribers", &body.replace("carol", "dave"));
    let r = api.put(
        &format!("/api/v1/subscribers/{}", dave["id"]),
        &body.replace("carol-secret", "new-secret-9"),
    );
    assert_eq!((r.status, r.field()), (409, "username"), "{}", r.raw);

    // Same domain twice (case-insensitively).
    let r = api.post("/api/v1/domains", r#"{"name": "EXAMPLE.com"}"#);
    assert_eq!((r.status, r.field()), (409, "name"), "{}", r.raw);
    // Same client-chosen customer id twice.
    let r = api.post(
        "/api/v1/customers",
        &format!(r#"{{"id": {customer}, "name": "again"}}"#),
    );
    assert_eq!((r.status, r.field()), (409, "id"), "{}", r.raw);

    // Rows in use: a customer with subscribers, a domain with subscribers,
    // renaming a domain with subscribers (their hashes depend on it).
    let r = api.delete(&format!("/api/v1/customers/{customer}"));
    assert_eq!(r.status, 409, "{}", r.raw);
    let r = api.delete("/api/v1/domains/1");
    assert_eq!(r.status, 409, "{}", r.raw);
    let r = api.put("/api/v1/domains/1", r#"{"name": "renamed.example.com"}"#);
    assert_eq!((r.status, r.field()), (409, "name"), "{}", r.raw);
    assert_eq!(
        api.get(&format!("/api/v1/subscribers/{}", first["id"]))
            .status,
        200
    );

    // Once the subscribers are gone, both can go.
    assert_eq!(
        api.delete(&format!("/api/v1/subscribers/{}", first["id"]))
            .status,
        204
    );
    assert_eq!(
        api.delete(&format!("/api/v1/subscribers/{}", dave["id"]))
            .status,
        204
    );
    assert_eq!(
        api.delete(&format!("/api/v1/customers/{customer}")).status,
        204
    );
    assert_eq!(api.delete("/api/v1/domains/1").status, 204);
}
