//! Bad input gives a clear error and leaves nothing that looks like an
//! image: unknown bay, invalid profile, missing flexvisor, missing package,
//! a role whose service binary is missing, a secrets file lacking an entry.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use flexvisor_image::{build, BuildError, Options, Selection};

fn images_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// A stand-in flexvisor, with stand-ins for flexctl and sip-lb beside it
/// (only their existence matters to these builds).
fn fake_flexvisor(dir: &Path) -> std::path::PathBuf {
    for b in ["flexvisor", "flexctl", "sip-lb"] {
        std::fs::write(dir.join(b), "#!/bin/sh\n").unwrap();
    }
    dir.join("flexvisor")
}

#[test]
fn unknown_bay_names_the_bays_in_use_and_writes_nothing() {
    let tmp = common::TempDir::new("bad-bay");
    let out = tmp.path().join("out");
    let opts = Options::new(fake_flexvisor(tmp.path()));
    let e = build(
        &common::profile("c5-50k.toml"),
        &Selection::Bay(15),
        None,
        &out,
        &opts,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(e, BuildError::Bay { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("no node in bay 15") && msg.contains("c5-50k.toml"),
        "{msg}"
    );
    assert!(images_in(&out).is_empty(), "{:?}", images_in(&out));
}

#[test]
fn invalid_profile_reports_the_problems() {
    let tmp = common::TempDir::new("bad-profile");
    let text = std::fs::read_to_string(common::profile("c5-50k.toml"))
        .unwrap()
        .replace("hostname = \"lb1a\"", "hostname = \"lb1b\"");
    let p = tmp.path().join("broken.toml");
    std::fs::write(&p, text).unwrap();
    let out = tmp.path().join("out");
    let opts = Options::new(fake_flexvisor(tmp.path()));
    let e = build(&p, &Selection::All, None, &out, &opts, &mut |_| {}).unwrap_err();
    match &e {
        BuildError::Profile(chassis::LoadError::Invalid(r)) => {
            assert!(r.render().contains("broken.toml:"), "{}", r.render());
        }
        other => panic!("expected an invalid-profile error, got {other}"),
    }
    assert!(images_in(&out).is_empty());
}

#[test]
fn missing_flexvisor_binary_says_how_to_build_it() {
    let tmp = common::TempDir::new("bad-fv");
    let out = tmp.path().join("out");
    let opts = Options::new(tmp.path().join("nope/flexvisor"));
    let e = build(
        &common::profile("c5-50k.toml"),
        &Selection::Bay(5),
        None,
        &out,
        &opts,
        &mut |_| {},
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("nope/flexvisor") && msg.contains("x86_64-unknown-linux-musl"),
        "{msg}"
    );
    assert!(images_in(&out).is_empty());
}

#[test]
fn missing_kernel_package_is_named_and_no_image_appears() {
    let tmp = common::TempDir::new("bad-pkg");
    let cache = tmp.path().join("cache");
    std::fs::create_dir_all(cache.join("apt")).unwrap();
    // The kernel metapackage resolves to a package no mirror has.
    std::fs::write(
        cache.join("apt/linux-image-amd64.resolved"),
        "linux-image-0.0.0-flexvisor-missing-amd64\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let mut opts = Options::new(fake_flexvisor(tmp.path()));
    opts.cache = flexvisor_image::packages::Cache::new(&cache);
    let e = build(
        &common::profile("c5-50k.toml"),
        &Selection::Bay(5),
        None,
        &out,
        &opts,
        &mut |_| {},
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("linux-image-0.0.0-flexvisor-missing-amd64"),
        "{msg}"
    );
    assert!(images_in(&out).is_empty(), "{:?}", images_in(&out));
}

#[test]
fn db_bay_without_the_db_failover_binary_names_it_and_writes_nothing() {
    let tmp = common::TempDir::new("bad-db-bin");
    let out = tmp.path().join("out");
    let opts = Options::new(fake_flexvisor(tmp.path()));
    // --all: the lb bays could be built, but nothing is written when any
    // bay's role lacks a binary.
    let e = build(
        &common::profile("c5-50k.toml"),
        &Selection::All,
        None,
        &out,
        &opts,
        &mut |_| {},
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(
            e,
            BuildError::MissingBinary { .. } | BuildError::Services(_)
        ),
        "{msg}"
    );
    let e = build(
        &common::profile("c5-50k.toml"),
        &Selection::Bay(3),
        None,
        &out,
        &opts,
        &mut |_| {},
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("db1a")
            && msg.contains("`db-failover`")
            && msg.contains("/usr/libexec/flexvisor/db-promote")
            && msg.contains(
                "cargo build --release --target x86_64-unknown-linux-musl -p db-failover"
            ),
        "{msg}"
    );
    assert!(images_in(&out).is_empty(), "{:?}", images_in(&out));
}

#[test]
fn secrets_file_lacking_what_the_services_need_is_named() {
    let tmp = common::TempDir::new("bad-secrets");
    let out = tmp.path().join("out");
    let mut opts = Options::new(fake_flexvisor(tmp.path()));
    std::fs::write(tmp.path().join("db-failover"), "#!/bin/sh\n").unwrap();
    let secrets = tmp.path().join("secrets.toml");
    std::fs::write(
        &secrets,
        "# deployment secrets\nchassis1-cmm-ipmi.password = x\n",
    )
    .unwrap();
    opts.secrets = Some(secrets.clone());
    let e = build(
        &common::profile("c5-50k.toml"),
        &Selection::Bay(3),
        None,
        &out,
        &opts,
        &mut |_| {},
    )
    .unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("secrets.toml")
            && msg.contains("db.replication_password")
            && msg.contains("db1a"),
        "{msg}"
    );
    assert!(
        !images_in(&out).iter().any(|f| f.ends_with(".img")),
        "{:?}",
        images_in(&out)
    );

    std::fs::write(&secrets, "no equals sign here\n").unwrap();
    let e = build(
        &common::profile("c5-50k.toml"),
        &Selection::Bay(5),
        None,
        &out,
        &opts,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("line 1: expected `name = value`"),
        "{e}"
    );
}
