//! Dependents follow a restarted dependency: when a service restarts (crash
//! or `flexctl restart`), the services that `requires` it are restarted
//! once it is ready again — not before, once per recovery, and not while
//! it crash-loops; `wants` dependents are left running.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;
use flexvisor::control::proto::Op;

/// `db` becomes ready (notify fd 3) only while `{dir}/gate` exists, and
/// exits 1 at once while `{dir}/crash` exists. `app` requires db, `app2`
/// requires app, `watcher` only wants db.
fn services(m: u32) -> Vec<(&'static str, String)> {
    let db = format!(
        r#"command = "/bin/sh"
args = ["-c", "echo db-start >> {{dir}}/order; [ -e {{dir}}/crash ] && exit 1; while [ ! -e {{dir}}/gate ]; do sleep 0.02; done; echo db-ready >> {{dir}}/order; echo >&3; exec sleep {m}"]
[readiness]
kind = "notify-fd"
fd = 3
[restart]
limit = 3
window_s = 600
"#
    );
    let dep = |name: &str, field: &str, on: &str| {
        format!(
            "command = \"/bin/sh\"\nargs = [\"-c\", \"echo {name}-start >> {{dir}}/order; exec sleep 100000\"]\n{field} = [\"{on}\"]\n"
        )
    };
    vec![
        ("db", db),
        ("app", dep("app", "requires", "db")),
        ("app2", dep("app2", "requires", "app")),
        ("watcher", dep("watcher", "wants", "db")),
    ]
}

fn start(m: u32) -> Sup {
    let svcs = services(m);
    let refs: Vec<(&str, &str)> = svcs.iter().map(|(n, t)| (*n, t.as_str())).collect();
    let sup = Sup::prepare(&refs);
    std::fs::write(sup.path("gate"), "").unwrap();
    let sup = sup.launch(&[]);
    sup.wait_console("flexvisor: ready");
    sup
}

fn order(sup: &Sup) -> Vec<String> {
    std::fs::read_to_string(sup.path("order"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn count(sup: &Sup, what: &str) -> usize {
    order(sup).iter().filter(|l| *l == what).count()
}

fn pid(sup: &Sup, name: &str) -> Option<i32> {
    sup.service(name).pid
}

/// Everything after the `n`-th (1-based) occurrence of `what`.
fn after(v: &[String], what: &str, n: usize) -> Vec<String> {
    let i = v
        .iter()
        .enumerate()
        .filter(|(_, l)| *l == what)
        .nth(n - 1)
        .map(|(i, _)| i)
        .unwrap_or_else(|| panic!("no {n}th {what} in {v:?}"));
    v[i + 1..].to_vec()
}

/// The supervisor started these (service, pid) in this order, according to
/// its event log (the services' own writes to `order` race each other on a
/// loaded machine once both run).
fn assert_started_in_order(sup: &Sup, started: &[(&str, Option<i32>)]) {
    let evs: Vec<flexvisor::events::Event> = serde_json::from_value(
        sup.call(Op::Events {
            follow: false,
            since: 0,
        })
        .unwrap(),
    )
    .unwrap();
    let seqs: Vec<u64> = started
        .iter()
        .map(|(name, pid)| {
            let msg = format!("started, pid {}", pid.unwrap());
            evs.iter()
                .find(|e| e.service.as_deref() == Some(*name) && e.message == msg)
                .unwrap_or_else(|| panic!("no `{name}: {msg}` in {evs:#?}"))
                .seq
        })
        .collect();
    assert!(
        seqs.is_sorted(),
        "{started:?} started out of order: {evs:#?}"
    );
}

#[test]
fn crash_of_a_dependency_restarts_requirers_after_it_is_ready_again() {
    let m = marker();
    let sup = start(m);
    let (app, app2, watcher) = (pid(&sup, "app"), pid(&sup, "app2"), pid(&sup, "watcher"));

    // db crashes and comes back, but is held before ready.
    std::fs::remove_file(sup.path("gate")).unwrap();
    let host = pids_with(&format!("sleep {m}"));
    assert_eq!(host.len(), 1, "db's sleep: {host:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(host[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_for("db started again", || count(&sup, "db-start") == 2);
    sup.wait_state("db", "starting");
    // Not ready yet: the requirers keep running untouched.
    assert_eq!(pid(&sup, "app"), app);
    assert_eq!(pid(&sup, "app2"), app2);
    assert_eq!(count(&sup, "app-start"), 1, "{:?}", order(&sup));

    std::fs::write(sup.path("gate"), "").unwrap();
    let st = sup.wait_until("app and app2 restarted", |st| {
        let get = |n: &str| st.services.iter().find(|s| s.name == n).unwrap();
        get("app").pid != app
            && get("app").state == "ready"
            && get("app2").pid != app2
            && get("app2").state == "ready"
    });
    let o = order(&sup);
    // After db was ready, app and app2 once each ...
    let mut restarted = after(&o, "db-ready", 2);
    restarted.sort();
    assert_eq!(restarted, vec!["app-start", "app2-start"], "{o:?}");
    let get = |n: &str| st.services.iter().find(|s| s.name == n).unwrap().clone();
    // ... in dependency order.
    assert_started_in_order(&sup, &[("app", get("app").pid), ("app2", get("app2").pid)]);
    assert_eq!(
        get("watcher").pid,
        watcher,
        "a `wants` dependent was restarted"
    );
    assert_eq!(count(&sup, "watcher-start"), 1);
    assert_eq!(get("app").restarts, 1);
    let evs = sup
        .call(Op::Events {
            follow: false,
            since: 0,
        })
        .unwrap();
    assert!(
        evs.to_string()
            .contains("restarting: required db restarted and is ready again"),
        "{evs}"
    );
}

#[test]
fn manual_restart_of_a_dependency_restarts_requirers_once() {
    let sup = start(marker());
    let (app, watcher) = (pid(&sup, "app"), pid(&sup, "watcher"));
    let db = pid(&sup, "db");
    sup.call(Op::Restart {
        service: "db".into(),
    })
    .unwrap();
    sup.wait_until("db, app, app2 restarted", |st| {
        let get = |n: &str| st.services.iter().find(|s| s.name == n).unwrap();
        get("db").pid != db
            && get("db").state == "ready"
            && get("app").pid != app
            && get("app").state == "ready"
            && count(&sup, "app2-start") == 2
            && get("app2").state == "ready"
    });
    let o = order(&sup);
    let mut restarted = after(&o, "db-ready", 2);
    restarted.sort();
    assert_eq!(restarted, vec!["app-start", "app2-start"], "{o:?}");
    assert_started_in_order(
        &sup,
        &[("app", pid(&sup, "app")), ("app2", pid(&sup, "app2"))],
    );
    assert_eq!(pid(&sup, "watcher"), watcher);
}

#[test]
fn a_crash_looping_dependency_does_not_restart_requirers() {
    let m = marker();
    let sup = start(m);
    let (app, app2) = (pid(&sup, "app"), pid(&sup, "app2"));

    std::fs::write(sup.path("crash"), "").unwrap();
    let host = pids_with(&format!("sleep {m}"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(host[0] as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    sup.wait_state("db", "failed");
    // Never ready again: no storm of requirer restarts, they keep running.
    assert_eq!(pid(&sup, "app"), app);
    assert_eq!(pid(&sup, "app2"), app2);
    assert_eq!(count(&sup, "app-start"), 1, "{:?}", order(&sup));

    // The operator fixes db: one restart of the requirers, after db is ready.
    std::fs::remove_file(sup.path("crash")).unwrap();
    sup.call(Op::Restart {
        service: "db".into(),
    })
    .unwrap();
    sup.wait_until("requirers restarted", |st| {
        let get = |n: &str| st.services.iter().find(|s| s.name == n).unwrap();
        get("db").state == "ready"
            && get("app").pid != app
            && get("app").state == "ready"
            && get("app2").pid != app2
            && get("app2").state == "ready"
    });
    assert_eq!(count(&sup, "app-start"), 2, "{:?}", order(&sup));
    assert_eq!(count(&sup, "app2-start"), 2, "{:?}", order(&sup));
}
