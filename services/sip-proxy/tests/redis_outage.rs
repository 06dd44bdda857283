//! The central Redis goes away and comes back (as in a db-pair fail-over):
//! while it is down, REGISTER fails with a 5xx instead of hanging or
//! crashing the proxy; once it is back the proxy reconnects by itself and
//! registrations work again without a restart.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use std::time::{Duration, Instant};

fn register(proxy: &ProxyProc, call_id: &str) -> u16 {
    let mut ua = Ua::new(proxy.addr);
    let c = format!("Contact: <sip:bob@{}>", ua.addr());
    ua.register("bob", "bobpw", call_id, &[c]).reply.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrar_fails_cleanly_during_redis_outage_and_recovers() {
    let mut b = Backends::start(&[Sub::new("bob", "bobpw", 1, None)], None).await;
    let mut proxy = ProxyProc::start(&b, "");
    tokio::task::block_in_place(|| {
        assert_eq!(register(&proxy, "before"), 200);

        b.redis.stop();
        let during = register(&proxy, "during");
        assert!(
            (500..600).contains(&during),
            "REGISTER during the outage got {during}"
        );
        assert!(proxy.alive(), "proxy died with Redis:\n{}", proxy.log());

        b.redis.restart().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut n = 0;
        loop {
            n += 1;
            let st = register(&proxy, &format!("after-{n}"));
            if st == 200 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no successful REGISTER within 30 s after Redis came back (last {st})"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    });
}
