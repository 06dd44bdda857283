//! Domains and customers round trip through the API (create, read, list
//! with pagination, replace, patch, delete), with the Location header
//! pointing at the new resource.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

#[test]
fn domains_and_customers_round_trip() {
    let api = WebApi::start();

    // Domains.
    let r = api.post("/api/v1/domains", r#"{"name": "Example.COM"}"#);
    assert_eq!(r.status, 201, "{}", r.raw);
    let id = r.body["id"].as_u64().unwrap();
    assert_eq!(r.body["name"], "example.com", "names are lower-cased");
    assert_eq!(r.header("location"), Some(format!("/api/v1/domains/{id}")));
    api.create("/api/v1/domains", r#"{"name": "b.example.net"}"#);
    api.create("/api/v1/domains", r#"{"name": "c.example.org"}"#);
    let r = api.get("/api/v1/domains?limit=2");
    assert_eq!(r.status, 200);
    assert_eq!(r.body["total"], 3);
    assert_eq!(r.body["items"].as_array().unwrap().len(), 2);
    let r = api.get("/api/v1/domains?limit=2&offset=2");
    assert_eq!(r.body["items"][0]["name"], "c.example.org");
    let r = api.put(
        &format!("/api/v1/domains/{id}"),
        r#"{"name": "a.example.com"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(
        api.get(&format!("/api/v1/domains/{id}")).body["name"],
        "a.example.com"
    );
    let r = api.patch(
        &format!("/api/v1/domains/{id}"),
        r#"{"name": "z.example.com"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["name"], "z.example.com");
    assert_eq!(api.delete(&format!("/api/v1/domains/{id}")).status, 204);
    assert_eq!(api.get(&format!("/api/v1/domains/{id}")).status, 404);
    assert_eq!(api.get("/api/v1/domains").body["total"], 2);

    // Customers: server-chosen ids, then a client-chosen one.
    let a = api.create(
        "/api/v1/customers",
        r#"{"name": "acme", "max_concurrent_calls": 3}"#,
    );
    let b = api.create("/api/v1/customers", r#"{"name": "globex"}"#);
    assert_eq!(b["id"].as_u64().unwrap(), a["id"].as_u64().unwrap() + 1);
    assert_eq!(b["max_concurrent_calls"], serde_json::Value::Null);
    let c = api.create("/api/v1/customers", r#"{"id": 1000, "name": "initech"}"#);
    assert_eq!(c["id"], 1000);
    let r = api.get("/api/v1/customers/1000");
    assert_eq!(r.status, 200);
    assert_eq!(r.body["name"], "initech");
    let r = api.put(
        "/api/v1/customers/1000",
        r#"{"name": "Initech Ltd", "max_concurrent_calls": 7}"#,
    );
    assert_eq!(r.status, 200, "{}", r.raw);
    let r = api.patch("/api/v1/customers/1000", r#"{"max_concurrent_calls": 8}"#);
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["name"], "Initech Ltd");
    assert_eq!(r.body["max_concurrent_calls"], 8);
    let r = api.get("/api/v1/customers?offset=1&limit=5");
    assert_eq!(r.body["total"], 3);
    let ids: Vec<u64> = r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [b["id"].as_u64().unwrap(), 1000]);
    assert_eq!(api.delete("/api/v1/customers/1000").status, 204);
    assert_eq!(api.get("/api/v1/customers/1000").status, 404);
    assert_eq!(
        api.put("/api/v1/customers/1000", r#"{"name": "x"}"#).status,
        404
    );

    // Unknown paths and methods.
    assert_eq!(api.get("/api/v1/nothing").status, 404);
    let r = api.request("POST", "/api/v1/customers/1", Some("{}"), Auth::Admin);
    assert_eq!(r.status, 405);
    assert!(r.header("allow").unwrap().contains("PATCH"));
}
