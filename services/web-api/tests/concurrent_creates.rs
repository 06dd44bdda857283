//! Many clients creating customers and subscribers at once all succeed,
//! with distinct ids (customer ids are allocated by web-api because
//! sip-proxy's `customers.id` has no AUTO_INCREMENT).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

#[test]
fn concurrent_creates_get_distinct_ids() {
    let api = WebApi::start();
    api.create("/api/v1/domains", r#"{"name": "example.com"}"#);
    let replies: Vec<Reply> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..12)
            .map(|i| {
                let api = &api;
                s.spawn(move || {
                    api.post(
                        "/api/v1/customers",
                        &format!(r#"{{"name": "customer {i}"}}"#),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut ids: Vec<u64> = replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, 201, "{}\n{}", r.raw, api.log());
            r.body["id"].as_u64().unwrap()
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 12, "{ids:?}");
    assert_eq!(api.get("/api/v1/customers").body["total"], 12);

    let customer = ids[0];
    let replies: Vec<Reply> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..12)
            .map(|i| {
                let api = &api;
                s.spawn(move || {
                    api.post(
                        "/api/v1/subscribers",
                        &format!(
                            r#"{{"username": "u{i}", "domain": "example.com", "password": "password-{i}", "customer_id": {customer}}}"#
                        ),
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &replies {
        assert_eq!(r.status, 201, "{}\n{}", r.raw, api.log());
    }
    assert_eq!(api.get("/api/v1/subscribers").body["total"], 12);
}
