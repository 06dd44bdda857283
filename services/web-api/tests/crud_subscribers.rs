//! Subscribers round trip through the API over verified HTTPS, and the rows
//! written are the ones sip-proxy reads: both HA1 hashes for realm = domain,
//! no clear password, customer and call limit, and no password in any reply.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;
use sqlx::Row as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriber_crud_round_trip_writes_what_sip_proxy_reads() {
    let api = WebApi::start();
    let customer = seed(&api);
    let created = api.create(
        "/api/v1/subscribers",
        &format!(
            r#"{{"username": "alice", "domain": "example.com", "password": "alice-secret", "customer_id": {customer}, "max_concurrent_calls": 2}}"#
        ),
    );
    let id = created["id"].as_u64().unwrap();
    assert_eq!(created["username"], "alice");
    assert_eq!(created["max_concurrent_calls"], 2);
    assert!(created.get("password").is_none(), "{created}");

    // sip-proxy's own lookup finds the subscriber with the right secrets.
    let proxy_db = sip_proxy::subscriber::SubscriberDb::connect(&api.db.url("flexvisor"), 1)
        .await
        .unwrap();
    let sub = proxy_db
        .find("alice", "example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sub.password, None, "clear password must not be stored");
    let md5 = sip_proxy::digest::ha1(
        sip_proxy::digest::Algorithm::Md5,
        "alice",
        "example.com",
        "alice-secret",
    );
    let sha = sip_proxy::digest::ha1(
        sip_proxy::digest::Algorithm::Sha256,
        "alice",
        "example.com",
        "alice-secret",
    );
    assert_eq!(sub.ha1_md5.as_deref(), Some(md5.as_str()));
    assert_eq!(sub.ha1_sha256.as_deref(), Some(sha.as_str()));
    assert_eq!(sub.customer_id, customer);
    assert_eq!(sub.max_calls, Some(2));
    assert_eq!(sub.customer_max_calls, Some(10));

    // GET one; the Location of the POST points at it.
    let r = api.get(&format!("/api/v1/subscribers/{id}"));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, created);

    // PATCH the call limit only: hashes unchanged.
    let r = api.patch(
        &format!("/api/v1/subscribers/{id}"),
        r#"{"max_concurrent_calls": null}"#,
    );
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["max_concurrent_calls"], serde_json::Value::Null);
    let sub = proxy_db
        .find("alice", "example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sub.max_calls, None);
    assert_eq!(sub.ha1_md5.as_deref(), Some(md5.as_str()));

    // PUT with a new password: new hashes, still no clear password.
    let r = api.put(
        &format!("/api/v1/subscribers/{id}"),
        &format!(
            r#"{{"username": "alice", "domain": "example.com", "password": "new-secret-2", "customer_id": {customer}, "max_concurrent_calls": 5}}"#
        ),
    );
    assert_eq!(r.status, 200, "{}", r.raw);
    assert!(!r.raw.contains("new-secret-2"));
    let sub = proxy_db
        .find("alice", "example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        sub.ha1_md5.unwrap(),
        sip_proxy::digest::ha1(
            sip_proxy::digest::Algorithm::Md5,
            "alice",
            "example.com",
            "new-secret-2"
        )
    );
    assert_eq!(sub.max_calls, Some(5));
    assert_eq!(sub.password, None);

    // Renaming without a password would leave stale hashes: refused.
    let r = api.patch(
        &format!("/api/v1/subscribers/{id}"),
        r#"{"username": "alice2"}"#,
    );
    assert_eq!(r.status, 400, "{}", r.raw);
    assert_eq!(r.field(), "password");

    // List with pagination.
    for i in 0..4 {
        api.create(
            "/api/v1/subscribers",
            &format!(
                r#"{{"username": "user{i}", "domain": "example.com", "password": "password-{i}", "customer_id": {customer}}}"#
            ),
        );
    }
    let r = api.get("/api/v1/subscribers?limit=2&offset=1");
    assert_eq!(r.status, 200, "{}", r.raw);
    assert_eq!(r.body["total"], 5);
    let items = r.body["items"].as_array().unwrap();
    let names: Vec<&str> = items
        .iter()
        .map(|s| s["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["user0", "user1"]);
    let r = api.get("/api/v1/subscribers?limit=1000&domain=example.com");
    assert_eq!(r.body["items"].as_array().unwrap().len(), 5);
    assert!(!r.raw.contains("password"), "{}", r.raw);
    assert!(!r.raw.contains("ha1"), "{}", r.raw);

    // DELETE: gone for the API and for sip-proxy.
    let r = api.delete(&format!("/api/v1/subscribers/{id}"));
    assert_eq!(r.status, 204, "{}", r.raw);
    assert_eq!(api.get(&format!("/api/v1/subscribers/{id}")).status, 404);
    assert_eq!(api.delete(&format!("/api/v1/subscribers/{id}")).status, 404);
    assert!(proxy_db
        .find("alice", "example.com")
        .await
        .unwrap()
        .is_none());
    let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM subscribers")
        .fetch_one(proxy_db.pool())
        .await
        .unwrap()
        .get("n");
    assert_eq!(n, 4);
}
