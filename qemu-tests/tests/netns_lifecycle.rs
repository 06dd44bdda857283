//! The run's namespace: unique name with the pid, isolated loopback,
//! removed on drop.

#![allow(clippy::unwrap_used)]

use std::net::{TcpListener, TcpStream};
use std::process::Command;

use qemu_tests::netns::Netns;

fn listed(name: &str) -> bool {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name))
}

#[test]
fn namespace_is_isolated_and_removed_on_drop() {
    let ns = Netns::create().expect("create (root, iproute2)");
    let name = ns.name().to_owned();
    assert!(name.contains(&std::process::id().to_string()), "{name}");
    assert!(listed(&name));
    let other = Netns::create().expect("second");
    assert_ne!(other.name(), name);

    // A listener inside is reachable inside and not from the host.
    let listener = ns
        .within(|| TcpListener::bind("127.0.0.1:0"))
        .expect("enter")
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    assert!(ns
        .within(move || TcpStream::connect(("127.0.0.1", port)).is_ok())
        .expect("enter"));
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} leaked to the host"
    );
    drop(listener);

    drop(ns);
    assert!(!listed(&name), "{name} left behind");
}
