//! SIGTERM: the daemon stops accepting connections, the request in flight
//! finishes with its reply and its write committed, then it exits 0.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

use std::time::{Duration, Instant};

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_finish() {
    let mut api = WebApi::start();
    let customer = seed(&api);
    let sub = api.create(
        "/api/v1/subscribers",
        &format!(
            r#"{{"username": "frank", "domain": "example.com", "password": "frank-secret", "customer_id": {customer}}}"#
        ),
    );
    let id = sub["id"].as_u64().unwrap();

    // Hold the subscriber's row lock so the API's update has to wait in
    // the database: a request that is provably in flight.
    let pool = api.pool().await;
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("SELECT id FROM subscribers WHERE id = ? FOR UPDATE")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    let (base, cert, scratch) = (api.base(), api.cert.clone(), api.dir.path().to_owned());
    let in_flight = std::thread::spawn(move || {
        curl(
            &base,
            &cert,
            "PATCH",
            &format!("/api/v1/subscribers/{id}"),
            Some(r#"{"max_concurrent_calls": 4}"#),
            Auth::Admin,
            &scratch,
        )
    });
    let waiting = || async {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.processlist WHERE info LIKE 'SELECT username, domain FROM subscribers%'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        n > 0
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !waiting().await {
        assert!(
            Instant::now() < deadline,
            "the PATCH never reached the database"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    api.terminate();
    // New connections are refused once the listener is closed.
    let port = api.port;
    wait_until("the listener to close", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    });
    assert!(!in_flight.is_finished(), "the PATCH must still be waiting");

    tx.commit().await.unwrap();
    let reply = in_flight.join().unwrap();
    assert_eq!(reply.status, 200, "{}", reply.raw);
    assert_eq!(reply.body["max_concurrent_calls"], 4);
    assert_eq!(api.wait_exit(), Some(0), "{}", api.log());
    let stored: Option<u32> =
        sqlx::query_scalar("SELECT max_concurrent_calls FROM subscribers WHERE id = ?")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored, Some(4));
    assert!(api.log().contains("stopped"), "{}", api.log());
}
