//! `web-api admin list|delete`: operators see who can log in to the API
//! (never the hashes) and remove an admin; the last admin is kept unless
//! forced, and an unknown name is an error that names it.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use std::process::Command;

fn admin(args: &[&str], config: &std::path::Path) -> (Option<i32>, String, String) {
    let out = Command::new(bin())
        .arg("admin")
        .arg(args[0])
        .arg("--config")
        .arg(config)
        .args(&args[1..])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn names(config: &std::path::Path) -> Vec<String> {
    let (code, out, err) = admin(&["list", "--json"], config);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(!out.contains("pbkdf2") && !out.contains('$'), "{out}");
    v["admins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert!(a["created"].as_str().unwrap().len() == 19, "{a}");
            a["username"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[test]
fn list_delete_and_the_last_admin_is_kept() {
    let api = WebApi::start();
    admin_add(&api.config, "ops", "ops-password-1");
    assert_eq!(names(&api.config), vec![ADMIN.to_owned(), "ops".to_owned()]);
    let (code, out, _) = admin(&["list"], &api.config);
    assert_eq!(code, Some(0));
    assert!(out.contains("USERNAME") && out.contains("ops"), "{out}");

    let (code, out, err) = admin(&["delete", "--username", "ops"], &api.config);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("ops deleted"), "{out}");
    assert_eq!(names(&api.config), vec![ADMIN.to_owned()]);
    // Never logged in before, so nothing cached: refused at once.
    let r = api.request(
        "GET",
        "/api/v1/domains",
        None,
        Auth::Basic("ops", "ops-password-1"),
    );
    assert_eq!(r.status, 401, "{r:?}");

    let (code, _, err) = admin(&["delete", "--username", "nobody"], &api.config);
    assert_eq!(code, Some(1));
    assert!(err.contains("\"nobody\""), "{err}");

    let (code, _, err) = admin(&["delete", "--username", ADMIN], &api.config);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("last admin") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(names(&api.config), vec![ADMIN.to_owned()]);
    let (code, _, err) = admin(&["delete", "--username", ADMIN, "--force"], &api.config);
    assert_eq!(code, Some(0), "{err}");
    assert!(names(&api.config).is_empty());
}
