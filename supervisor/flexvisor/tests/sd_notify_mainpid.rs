//! sd_notify `MAINPID=`: a service that forks names its new main process;
//! the parent exiting is not the service ending, the new main pid is
//! tracked (status, stop), and its exit is the service's exit. A MAINPID
//! naming a process outside the service is refused.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use flexvisor::control::proto::Op;

fn forker(m: u32) -> String {
    format!(
        r#"command = "/bin/sh"
args = ["-c", "echo run >> {{dir}}/runs; sleep {m} & child=$!; echo $child > {{dir}}/child; printf \"MAINPID=$child\nREADY=1\" | socat - UNIX-SENDTO:$NOTIFY_SOCKET; exit 0"]
[readiness]
kind = "sd-notify"
"#
    )
}

fn events(sup: &Sup) -> String {
    sup.call(Op::Events {
        follow: false,
        since: 0,
    })
    .unwrap()
    .to_string()
}

fn child(sup: &Sup) -> i32 {
    std::fs::read_to_string(sup.path("child"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn forked_main_pid_is_tracked_and_its_exit_is_the_service_exit() {
    let m = marker();
    let sup = Sup::start(&[("forker", &forker(m))]);
    sup.wait_state("forker", "ready");
    // The parent has exited: the service stays ready, on the child.
    wait_for("former main pid recorded", || {
        events(&sup).contains("former main pid")
    });
    let s = sup.service("forker");
    assert_eq!(s.state, "ready", "{s:?}\n{}", sup.console());
    assert_eq!(s.pid, Some(child(&sup)), "{s:?}");
    assert_eq!(s.restarts, 0, "parent exit taken for a crash: {s:?}");
    assert!(
        events(&sup).contains(&format!("main pid is now {} (MAINPID=", child(&sup))),
        "{}",
        events(&sup)
    );

    // The forked process dies: that is the service's exit, it restarts.
    let first = child(&sup);
    let host = pids_with(&format!("sleep {m}"));
    assert_eq!(host.len(), 1, "{host:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(host[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let st = sup.wait_until("restart on the child's exit", |st| {
        let s = &st.services[0];
        s.restarts == 1 && s.state == "ready" && s.pid.is_some_and(|p| p != first)
    });
    assert_eq!(
        st.services[0].last_exit.as_deref(),
        Some("killed by SIGKILL"),
        "{st:?}"
    );
    wait_for("new child pid tracked", || {
        sup.service("forker").pid == Some(child(&sup))
    });

    // Stopping the service stops the forked main process.
    sup.call(Op::Stop {
        service: "forker".into(),
    })
    .unwrap();
    sup.wait_state("forker", "down");
    wait_for("forked sleep gone", || {
        pids_with(&format!("sleep {m}")).is_empty()
    });
}

#[test]
fn main_pid_outside_the_service_is_refused() {
    let m = marker();
    let sup = Sup::start(&[
        (
            "victim",
            "command = \"/bin/sh\"\nargs = [\"-c\", \"echo $$ > {dir}/victim; exec sleep 100000\"]\n",
        ),
        (
            "liar",
            &format!(
                r#"command = "/bin/sh"
args = ["-c", "printf \"MAINPID=$(cat {{dir}}/victim)\nREADY=1\" | socat - UNIX-SENDTO:$NOTIFY_SOCKET; exec sleep {m}"]
requires = ["victim"]
[readiness]
kind = "sd-notify"
"#
            ),
        ),
    ]);
    sup.wait_state("liar", "ready");
    let victim: i32 = std::fs::read_to_string(sup.path("victim"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for("refusal recorded", || {
        events(&sup).contains(&format!("MAINPID={victim} refused"))
    });
    let liar = sup.service("liar");
    assert_ne!(liar.pid, Some(victim), "{liar:?}");
    // The victim is untouched by the liar's lifecycle: stopping the liar
    // leaves it running.
    sup.call(Op::Stop {
        service: "liar".into(),
    })
    .unwrap();
    sup.wait_state("liar", "down");
    let v = sup.service("victim");
    assert_eq!((v.state.as_str(), v.pid), ("ready", Some(victim)));
}

/// Host pids of `sleep ARG` processes themselves (a shell's command line
/// that names them does not count).
fn sleeps(arg: &str) -> Vec<u32> {
    pids_with(&format!("sleep {arg}"))
        .into_iter()
        .filter(|p| {
            std::fs::read(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c == format!("sleep\0{arg}\0").as_bytes())
        })
        .collect()
}

/// The adopted main process is reaped by the parent that forked it (the
/// parent lives on and `wait`s for it): flexvisor never gets its exit
/// status, yet the service has ended and is restarted.
#[test]
fn main_pid_reaped_by_its_own_parent_still_ends_the_service() {
    let m = marker();
    let sup = Sup::start(&[(
        "waiter",
        &format!(
            r#"command = "/bin/sh"
args = ["-c", "echo run >> {{dir}}/runs; sleep {m} & child=$!; echo $child > {{dir}}/child; printf \"MAINPID=$child\nREADY=1\" | socat - UNIX-SENDTO:$NOTIFY_SOCKET; wait $child; exec sleep 100000"]
[readiness]
kind = "sd-notify"
"#
        ),
    )]);
    sup.wait_state("waiter", "ready");
    wait_for("main pid moved to the child", || {
        sup.service("waiter").pid == Some(child(&sup))
    });
    let first = child(&sup);
    let host = sleeps(&m.to_string());
    assert_eq!(host.len(), 1, "{host:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(host[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let st = sup.wait_until("restart after the reaped child's end", |st| {
        let s = &st.services[0];
        s.restarts == 1 && s.state == "ready" && s.pid.is_some_and(|p| p != first)
    });
    let last = st.services[0].last_exit.clone().unwrap_or_default();
    assert!(last.contains("exit status unknown"), "{st:?}");
    // The former parent (now `sleep 100000`) went with the old run.
    wait_for("old run's parent gone", || sleeps("100000").is_empty());
}
