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

/// A proxy node (proxy1b of the 50k profile) whose peer is on loopback.
fn proxy1b(dir: &std::path::Path) -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let loaded = chassis::load_file(&root.join("chassis-profiles/c5-50k.toml")).unwrap();
    let mut n = chassis::node::resolve(&loaded.profile, 8, None).unwrap();
    assert_eq!(n.hostname, "proxy1b");
    n.pair
        .peer
        .addresses
        .insert("internal".into(), "127.0.0.1".parse().unwrap());
    n.secrets = dir.join("no-secrets").display().to_string();
    let cfg = dir.join("node.toml");
    std::fs::write(&cfg, toml::to_string(&n).unwrap()).unwrap();
    cfg
}

#[test]
fn redis_links_act_on_a_proxy_pairs_redis_and_never_touch_mariadb() {
    // The proxy pair's Redis holds registrations and call state: the
    // standby replicates the active node's, and takes over its data.
    let dir = TempDir::new("db-failover-redis-only");
    let (a, b) = (Redis::start(), Redis::start());
    a.cli(&["SET", "location:alice", "sip:alice@192.0.2.10:5060"]);
    let cfg = proxy1b(dir.path());
    let link = |name: &str| {
        let l = dir.path().join(name);
        std::os::unix::fs::symlink(bin(), &l).unwrap();
        l
    };
    let (demote, promote) = (link("redis-demote"), link("redis-promote"));
    // No MariaDB anywhere: a socket that does not exist proves it is not asked.
    let common = format!(
        "--redis-port {} --peer-redis-port {} --mysql-socket {}/none.sock --json",
        b.port,
        a.port,
        dir.path().display()
    );
    let r = run(Command::new("/bin/sh")
        .args(["-c", &format!("{} {common}", demote.display())])
        .env("FLEXVISOR_NODE_CONFIG", &cfg));
    assert_eq!(r.code, Some(0), "{r:?}");
    let j = r.json();
    assert_eq!(j["mariadb"]["state"], "skipped", "{j}");
    assert!(
        j["peer_source"].as_str().unwrap().contains("proxy1a"),
        "{j}"
    );
    assert_eq!(b.role()[0], "slave");
    wait_for("the registration on the standby", || {
        b.try_cli(&["GET", "location:alice"]).ok().as_deref() == Some("sip:alice@192.0.2.10:5060")
    });
    // The active node is gone: the standby's promote keeps the data.
    drop(a);
    let r = run(Command::new("/bin/sh")
        .args(["-c", &format!("{} {common}", promote.display())])
        .env("FLEXVISOR_NODE_CONFIG", &cfg));
    assert_eq!(r.code, Some(0), "{r:?}");
    assert_eq!(r.json()["mariadb"]["state"], "skipped");
    assert_eq!(b.role()[0], "master");
    assert_eq!(
        b.cli(&["GET", "location:alice"]),
        "sip:alice@192.0.2.10:5060"
    );
    b.cli(&["SET", "location:bob", "sip:bob@192.0.2.11:5060"]);

    // Without --only redis, a proxy node is refused (its MariaDB is a
    // read-only copy of the db pair's, not the pair's to promote).
    let r = run(Command::new(bin())
        .arg("promote")
        .arg("--node-config")
        .arg(&cfg));
    assert_eq!(r.code, Some(3), "{r:?}");
    assert!(r.stderr.contains("role is `proxy`"), "{r:?}");
}
