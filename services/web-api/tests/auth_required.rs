//! The REST resources need an admin (HTTP Basic against the admins table);
//! /health and /metrics do not.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::*;

#[test]
fn resources_need_admin_credentials() {
    let api = WebApi::start();
    for (method, path, body) in [
        ("GET", "/api/v1/subscribers", None),
        (
            "POST",
            "/api/v1/domains",
            Some(r#"{"name": "example.com"}"#),
        ),
        ("GET", "/api/v1/customers/1", None),
        ("DELETE", "/api/v1/domains/1", None),
    ] {
        let r = api.request(method, path, body, Auth::None);
        assert_eq!(r.status, 401, "{method} {path}: {}", r.raw);
        assert!(
            r.header("www-authenticate").unwrap().starts_with("Basic"),
            "{}",
            r.headers
        );
        let r = api.request(method, path, body, Auth::Basic(ADMIN, "wrong-password"));
        assert_eq!(r.status, 401, "{method} {path} wrong password: {}", r.raw);
        let r = api.request(method, path, body, Auth::Basic("nobody", ADMIN_PW));
        assert_eq!(r.status, 401, "{method} {path} unknown admin: {}", r.raw);
    }
    // Nothing was created by the refused POST.
    assert_eq!(api.get("/api/v1/domains").body["total"], 0);

    // A second admin added with the CLI while the daemon runs works at once.
    admin_add(&api.config, "ops", "ops-password-2");
    let r = api.request(
        "GET",
        "/api/v1/domains",
        None,
        Auth::Basic("ops", "ops-password-2"),
    );
    assert_eq!(r.status, 200, "{}", r.raw);
    // Adding the same admin twice fails with a clear message.
    let mut child = std::process::Command::new(bin())
        .args(["admin", "add", "--config"])
        .arg(&api.config)
        .args(["--username", "ops", "--iterations", "1000"])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"another-password\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("admin ops exists"));

    // The hash in the table is salted PBKDF2, not the password.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hashes: Vec<String> = rt.block_on(async {
        let pool = api.pool().await;
        sqlx::query_scalar("SELECT password_hash FROM admins ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap()
    });
    assert_eq!(hashes.len(), 2);
    for h in &hashes {
        assert!(h.starts_with("$pbkdf2-sha256$i=1000$"), "{h}");
        assert!(!h.contains(ADMIN_PW) && !h.contains("ops-password-2"));
    }

    // Health and metrics are for probes: no credentials needed.
    assert_eq!(api.request("GET", "/health", None, Auth::None).status, 200);
    assert_eq!(api.request("GET", "/metrics", None, Auth::None).status, 200);
}
