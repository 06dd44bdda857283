//! REGISTER with digest authentication against the subscriber table: sipp
//! with MD5, a UA with SHA-256 (RFC 8760), wrong passwords, replayed
//! credentials, stale nonces (stale=true), too-short expiry (423), unregistering one contact and all
//! with `*`; bindings are checked in Redis where every proxy looks them up.
#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use sip_proxy::digest::{ha1, Algorithm, NonceKey};
use sip_proxy::location::Location;

fn challenges(r: &sip::Response) -> Vec<sip::Auth> {
    r.headers.www_authenticate().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_with_md5_and_sha256_digest_and_unregister() {
    let b = Backends::start(
        &[
            Sub::new("alice", "alicepw", 1, None),
            Sub::new("bob", "bobpw", 2, None),
        ],
        None,
    )
    .await;
    let proxy = ProxyProc::start(&b, "");
    let loc = Location::new(b.redis_conn().await);
    let alice_port = free_port();

    // sipp (MD5) registers alice.
    tokio::task::block_in_place(|| sipp_register(&proxy, "alice", "alicepw", alice_port));
    let alice = loc.lookup("alice@example.com", unix_now()).await.unwrap();
    assert_eq!(alice.len(), 1);
    assert_eq!(alice[0].uri, format!("sip:alice@127.0.0.1:{alice_port}"));
    assert_eq!(
        alice[0].received.as_deref(),
        Some(&*format!("127.0.0.1:{alice_port}"))
    );

    tokio::task::block_in_place(|| {
        let mut ua = Ua::new(proxy.addr);
        let contact = format!("Contact: <sip:bob@{}>;expires=120", ua.addr());

        // Unauthenticated: 401 offering MD5 and SHA-256 with one realm.
        let req = ua.register_request("bob", "reg-bob", std::slice::from_ref(&contact));
        let r = ua.transact(&req);
        assert_eq!(r.status, 401);
        let ch = challenges(&r);
        let algs: Vec<_> = ch
            .iter()
            .map(|c| c.get("algorithm").unwrap().to_string())
            .collect();
        assert_eq!(algs, vec!["MD5", "SHA-256"]);
        assert!(ch
            .iter()
            .all(|c| c.get("realm") == Some(DOMAIN) && c.get("qop") == Some("auth")));
        let sha = ch
            .iter()
            .find(|c| c.get("algorithm") == Some("SHA-256"))
            .unwrap();

        // Wrong password: challenged again, nothing stored.
        let bad = authorization(sha, "bob", "wrong");
        let req = ua.register_request("bob", "reg-bob", &[contact.clone(), bad]);
        assert_eq!(ua.transact(&req).status, 401);

        // SHA-256 with the right password: 200 listing the binding.
        let good = authorization(sha, "bob", "bobpw");
        let req = ua.register_request("bob", "reg-bob", &[contact.clone(), good.clone()]);
        let r = ua.transact(&req);
        assert_eq!(r.status, 200, "{r:?}");
        let c = r.headers.contacts().unwrap();
        assert_eq!(c.len(), 1);

        // The same Authorization replayed in a new request: challenged again.
        let req = ua.register_request("bob", "reg-bob", &[contact.clone(), good]);
        assert_eq!(
            ua.transact(&req).status,
            401,
            "replayed credentials accepted"
        );

        // A correct answer to an expired nonce: 401 with stale=true.
        let old = NonceKey::new(NONCE_SECRET.as_bytes(), 300).issue(DOMAIN, unix_now() - 1000);
        let h = ha1(Algorithm::Sha256, "bob", DOMAIN, "bobpw");
        let stale = answer_with_nonce(
            Algorithm::Sha256,
            DOMAIN,
            &old,
            "REGISTER",
            "sip:example.com",
            "bob",
            &h,
        );
        let req = ua.register_request(
            "bob",
            "reg-bob",
            &[contact.clone(), format!("Authorization: {stale}")],
        );
        let r = ua.transact(&req);
        assert_eq!(r.status, 401);
        assert!(
            challenges(&r)
                .iter()
                .all(|c| c.get("stale") == Some("true")),
            "{r:?}"
        );

        // Expires below min_expires (60): 423 with Min-Expires.
        let short = format!("Contact: <sip:bob@{}>;expires=5", ua.addr());
        let req = ua.register_request(
            "bob",
            "reg-bob",
            &[short, authorization(sha, "bob", "bobpw")],
        );
        let r = ua.transact(&req);
        assert_eq!(r.status, 423);
        assert_eq!(r.headers.get(&sip::HeaderName::MinExpires), Some("60"));

        // A second contact, then `*` with Expires: 0 removes both.
        let second = "Contact: <sip:bob@127.0.0.1:1>;expires=60;q=0.5".to_string();
        let req = ua.register_request(
            "bob",
            "reg-bob",
            &[second, authorization(sha, "bob", "bobpw")],
        );
        let r = ua.transact(&req);
        assert_eq!(r.status, 200);
        assert_eq!(r.headers.contacts().unwrap().len(), 2);
        let req = ua.register_request(
            "bob",
            "reg-bob",
            &[
                "Contact: *".into(),
                "Expires: 0".into(),
                authorization(sha, "bob", "bobpw"),
            ],
        );
        let r = ua.transact(&req);
        assert_eq!(r.status, 200);
        assert_eq!(r.headers.contacts().unwrap().len(), 0);

        // `*` without Expires: 0 is refused.
        let req = ua.register_request(
            "bob",
            "reg-bob",
            &["Contact: *".into(), authorization(sha, "bob", "bobpw")],
        );
        assert_eq!(ua.transact(&req).status, 400);

        // A domain we do not serve is not relayed.
        let req = ua.build(
            "REGISTER",
            "sip:other.org",
            "sip:bob@other.org",
            "sip:bob@other.org",
            "reg-other",
            &[],
        );
        assert_eq!(ua.transact(&req).status, 403);
    });
    assert!(loc
        .lookup("bob@example.com", unix_now())
        .await
        .unwrap()
        .is_empty());

    // carol is provisioned with an SHA-256 HA1 only (no clear password):
    // SHA-256 works, MD5 is refused since no MD5 secret exists.
    sqlx::query(
        "INSERT INTO subscribers (username, domain, password, ha1_sha256, customer_id) \
         VALUES ('carol', ?, NULL, ?, 1)",
    )
    .bind(DOMAIN)
    .bind(ha1(Algorithm::Sha256, "carol", DOMAIN, "carolpw"))
    .execute(b.subs.pool())
    .await
    .unwrap();
    tokio::task::block_in_place(|| {
        let mut ua = Ua::new(proxy.addr);
        let contact = format!("Contact: <sip:carol@{}>", ua.addr());
        let req = ua.register_request("carol", "reg-carol", std::slice::from_ref(&contact));
        let r = ua.transact(&req);
        let ch = challenges(&r);
        for (alg, want) in [("SHA-256", 200), ("MD5", 403)] {
            let c = ch.iter().find(|c| c.get("algorithm") == Some(alg)).unwrap();
            let req = ua.register_request(
                "carol",
                "reg-carol",
                &[contact.clone(), authorization(c, "carol", "carolpw")],
            );
            assert_eq!(ua.transact(&req).status, want, "carol with {alg}");
        }
    });

    // alice unregisters her single contact with Expires: 0 via sipp.
    tokio::task::block_in_place(|| {
        let v = Vars {
            user: "alice",
            password: "alicepw",
            expires: 0,
            ..Vars::default()
        };
        Sipp::client(
            "unregister-alice",
            "register.xml",
            &v,
            alice_port,
            proxy.addr,
        )
        .expect_success();
    });
    assert!(loc
        .lookup("alice@example.com", unix_now())
        .await
        .unwrap()
        .is_empty());
}
