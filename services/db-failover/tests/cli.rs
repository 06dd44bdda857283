//! The command line as flexvisor and operators use it: `--help`, the
//! `db-promote`/`db-demote` links run through `/bin/sh -c` with the node
//! configuration, and clear refusals of a wrong node configuration.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use std::process::Command;

fn db1b() -> chassis::NodeConfig {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let loaded = chassis::load_file(&root.join("chassis-profiles/c5-50k.toml")).unwrap();
    let n = chassis::node::resolve(&loaded.profile, 4, None).unwrap();
    assert_eq!(n.hostname, "db1b");
    n
}

#[test]
fn help_describes_both_actions() {
    let r = run(Command::new(bin()).arg("--help"));
    assert_eq!(r.code, Some(0), "{r:?}");
    assert!(
        r.stdout.contains("promote") && r.stdout.contains("demote"),
        "{r:?}"
    );
    assert!(r.stdout.contains("--node-config"), "{r:?}");
}

#[test]
fn without_an_action_it_says_what_to_name() {
    let r = run(Command::new(bin()).arg("--peer-host").arg("127.0.0.1"));
    assert_eq!(r.code, Some(3), "{r:?}");
    assert!(r.stderr.contains("promote or demote"), "{r:?}");
}

#[test]
fn db_promote_link_run_by_the_shell_promotes_from_the_node_configuration() {
    let p = Pair::start();
    let link = p.dir().join("db-promote");
    std::os::unix::fs::symlink(bin(), &link).unwrap();
    let mut n = db1b();
    n.pair
        .peer
        .addresses
        .insert("internal".into(), "127.0.0.1".parse().unwrap());
    // The node's secrets file is the default credentials file.
    n.secrets = p.creds.display().to_string();
    let cfg = p.dir().join("node.toml");
    std::fs::write(&cfg, toml::to_string(&n).unwrap()).unwrap();
    // As flexvisor runs a hook: /bin/sh -c CMD, the node configuration in
    // the environment.
    let cmd = format!(
        "{} --redis-port {} --peer-redis-port {} --mysql-socket {} --json",
        link.display(),
        p.redis_b.port,
        p.redis_a.port,
        p.maria_b.socket.display()
    );
    let r = run(Command::new("/bin/sh")
        .args(["-c", &cmd])
        .env("FLEXVISOR_NODE_CONFIG", &cfg));
    assert_eq!(r.code, Some(0), "{r:?}");
    let j = r.json();
    assert_eq!(j["action"], "promote");
    assert_eq!(j["peer"], "127.0.0.1");
    assert!(j["peer_source"].as_str().unwrap().contains("db1a"), "{j}");
    assert!(!p.maria_b.read_only());
    assert_eq!(p.redis_b.role()[0], "master");
}

#[test]
fn a_node_that_is_not_db_is_refused_naming_file_and_role() {
    let dir = TempDir::new("db-failover-cli");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let loaded = chassis::load_file(&root.join("chassis-profiles/c5-50k.toml")).unwrap();
    let web = chassis::node::resolve(&loaded.profile, 1, None).unwrap();
    let cfg = dir.path().join("node.toml");
    std::fs::write(&cfg, toml::to_string(&web).unwrap()).unwrap();
    let r = run(Command::new(bin())
        .arg("demote")
        .arg("--node-config")
        .arg(&cfg));
    assert_eq!(r.code, Some(3), "{r:?}");
    assert!(r.stderr.contains(cfg.to_str().unwrap()), "{r:?}");
    assert!(r.stderr.contains("role is `web`"), "{r:?}");
}

#[test]
fn a_missing_node_configuration_is_named() {
    let r = run(Command::new(bin())
        .arg("promote")
        .arg("--node-config")
        .arg("/nonexistent/node.toml"));
    assert_eq!(r.code, Some(3), "{r:?}");
    assert!(r.stderr.contains("/nonexistent/node.toml"), "{r:?}");
}
