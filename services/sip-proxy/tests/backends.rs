//! The data layer against real MariaDB and Redis: subscriber lookup with
//! limits, registrations with expiry, and call counters that survive a
//! proxy restart (a second `Calls` handle for the same node adopts them).

#![allow(clippy::unwrap_used)]

mod common;

use common::{Backends, Sub};
use sip_proxy::calls::{CallRecord, Calls, Counter, Side};
use sip_proxy::location::{Binding, Location, Update};

fn rec(call_id: &str) -> CallRecord {
    CallRecord {
        call_id: call_id.into(),
        keys: vec![],
        node: "proxy1a".into(),
        caller: "alice@example.com".into(),
        callee: "bob@example.com".into(),
        caller_customer: Some(1),
        callee_customer: Some(1),
        from_tag: "f".into(),
        to_tag: String::new(),
        start_ms: 0,
        answered_ms: None,
    }
}

#[tokio::test]
async fn subscriber_lookup_registrations_and_call_limits() {
    let b = Backends::start(
        &[
            Sub {
                user: "alice",
                domain: "example.com",
                password: "pw1",
                customer: 1,
                max_calls: Some(1),
            },
            Sub {
                user: "bob",
                domain: "example.com",
                password: "pw2",
                customer: 1,
                max_calls: None,
            },
        ],
        Some(2),
    )
    .await;

    // Subscriber lookup returns limits from both tables; unknown is None.
    let alice = b.subs.find("alice", "example.com").await.unwrap().unwrap();
    assert_eq!(
        (alice.max_calls, alice.customer_max_calls),
        (Some(1), Some(2))
    );
    assert_eq!(alice.password.as_deref(), Some("pw1"));
    assert!(b.subs.find("alice", "other.org").await.unwrap().is_none());

    // Registrations: upsert, ordering by q, expiry, out-of-order refusal.
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let loc = Location::new(b.redis_conn().await);
    let bind = |uri: &str, q: f32, exp: u64, cseq: u32| Binding {
        uri: uri.into(),
        q,
        expires_at: exp,
        path: vec!["<sip:lb@127.0.0.1;lr>".into()],
        received: Some("127.0.0.1:5070".into()),
        call_id: "reg-1".into(),
        cseq,
    };
    let live = loc
        .apply(
            "alice@example.com",
            vec![
                Update::Upsert(bind("sip:a@127.0.0.1:5070", 0.5, t0 + 100, 1)),
                Update::Upsert(bind("sip:a@127.0.0.1:5071", 0.9, t0 + 50, 1)),
            ],
            t0,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(live.len(), 2);
    assert_eq!(live[0].uri, "sip:a@127.0.0.1:5071");
    assert_eq!(
        loc.lookup("alice@example.com", t0 + 60)
            .await
            .unwrap()
            .len(),
        1
    );
    let refused = loc
        .apply(
            "alice@example.com",
            vec![Update::Upsert(bind(
                "sip:a@127.0.0.1:5070",
                0.5,
                t0 + 200,
                1,
            ))],
            t0 + 1,
        )
        .await
        .unwrap();
    assert!(refused.is_err(), "same Call-ID and CSeq must be refused");
    loc.remove_all("alice@example.com").await.unwrap();
    assert!(loc
        .lookup("alice@example.com", t0 + 1)
        .await
        .unwrap()
        .is_empty());

    // Call counters: alice's own limit is 1, customer 1's limit is 2.
    let now = t0;
    let calls = Calls::new(b.redis_conn().await, "proxy1a", 60);
    let alice_out = |_| {
        vec![
            Counter::subscriber("alice@example.com", Some(1), Side::Caller),
            Counter::customer(1, Some(2), Side::Caller),
        ]
    };
    assert_eq!(
        calls
            .acquire(&rec("c1"), &alice_out(()), now)
            .await
            .unwrap(),
        Ok(())
    );
    assert_eq!(
        calls
            .acquire(&rec("c2"), &alice_out(()), now)
            .await
            .unwrap(),
        Err(Side::Caller)
    );
    let bob_in = vec![
        Counter::subscriber("bob@example.com", None, Side::Callee),
        Counter::customer(1, Some(2), Side::Callee),
    ];
    assert_eq!(
        calls.acquire(&rec("c3"), &bob_in, now).await.unwrap(),
        Ok(())
    );
    // Customer 1 is now at 2 calls: a third is refused on the callee side.
    assert_eq!(
        calls.acquire(&rec("c4"), &bob_in, now).await.unwrap(),
        Err(Side::Callee)
    );
    assert_eq!(calls.count("cc:cust:1", now).await.unwrap(), 2);

    // "Restart": a fresh handle for the same node sees and refreshes c1.
    drop(calls);
    let restarted = Calls::new(b.redis_conn().await, "proxy1a", 60);
    let mut owned = restarted.owned().await.unwrap();
    owned.sort();
    assert_eq!(owned, vec!["c1".to_string(), "c3".to_string()]);
    assert!(restarted.refresh("c1", now + 50).await.unwrap().is_some());
    // Past the original expiry (now+60) c1 still counts because it was refreshed.
    assert_eq!(
        calls_count(&restarted, "cc:sub:alice@example.com", now + 70).await,
        1
    );
    // c3 was not refreshed and has expired by now+70.
    assert_eq!(
        calls_count(&restarted, "cc:sub:bob@example.com", now + 70).await,
        0
    );

    // Release frees both counters exactly once.
    let r = restarted.release("c1").await.unwrap().unwrap();
    assert_eq!(r.keys.len(), 2);
    assert!(restarted.release("c1").await.unwrap().is_none());
    assert_eq!(
        calls_count(&restarted, "cc:sub:alice@example.com", now).await,
        0
    );
    assert_eq!(
        restarted
            .acquire(&rec("c5"), &alice_out(()), now)
            .await
            .unwrap(),
        Ok(())
    );
}

async fn calls_count(c: &Calls, key: &str, now: u64) -> u64 {
    c.count(key, now).await.unwrap()
}
