//! A service runs with the user, group, working directory, environment and
//! resource limits of its definition.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use flexvisor::control::proto::Op;
use flexvisor::logs::LogLine;

#[test]
fn service_gets_its_identity_and_limits() {
    let sup = Sup::start(&[(
        "who",
        r#"command = "/bin/sh"
args = ["-c", "echo uid=$(id -u) gid=$(id -g) cwd=$(pwd) nofile=$(ulimit -n) greeting=$GREETING path=$PATH; exec sleep 100000"]
user = "nobody"
group = "nogroup"
cwd = "/tmp"
env = { GREETING = "hi" }
rlimits = { nofile = 1234 }
"#,
    )]);
    sup.wait_state("who", "ready");
    wait_for("output", || {
        sup.call(Op::Logs {
            service: "who".into(),
            lines: None,
            follow: false,
        })
        .unwrap()
        .to_string()
        .contains("uid=")
    });
    let lines: Vec<LogLine> = serde_json::from_value(
        sup.call(Op::Logs {
            service: "who".into(),
            lines: None,
            follow: false,
        })
        .unwrap(),
    )
    .unwrap();
    let line = &lines[0].text;
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let nogroup = nix::unistd::Group::from_name("nogroup").unwrap().unwrap();
    assert!(line.contains(&format!("uid={} ", nobody.uid)), "{line}");
    assert!(line.contains(&format!("gid={} ", nogroup.gid)), "{line}");
    assert!(line.contains("cwd=/tmp "), "{line}");
    assert!(line.contains("nofile=1234 "), "{line}");
    assert!(line.contains("greeting=hi "), "{line}");
    assert!(line.contains("path=/usr/local/sbin:"), "{line}");
}

#[test]
fn unknown_user_is_reported_and_counts_as_failure() {
    let sup = Sup::start(&[(
        "ghost",
        r#"command = "/bin/true"
user = "no-such-user-here"
[restart]
limit = 2
"#,
    )]);
    sup.wait_state("ghost", "failed");
    assert!(
        sup.console()
            .contains("ghost: cannot start: unknown user `no-such-user-here`"),
        "{}",
        sup.console()
    );
}
