//! Health probes: rise/fall turn a service healthy or unhealthy, and a
//! probe with `restart = true` restarts it when it turns unhealthy.
#![allow(clippy::unwrap_used)]
mod common;
use common::*;

#[test]
fn failing_probe_marks_unhealthy_and_restarts() {
    let sup = Sup::start(&[(
        "app",
        r#"command = "/bin/sh"
args = ["-c", "echo run >> {dir}/runs; touch {dir}/healthy; exec sleep 100000"]
[[probe]]
kind = "command"
command = ["/bin/sh", "-c", "test -e {dir}/healthy"]
interval_ms = 50
timeout_ms = 1000
rise = 2
fall = 2
restart = true
"#,
    )]);
    sup.wait_until("app healthy", |st| st.services[0].health == Some(true));
    std::fs::remove_file(sup.path("healthy")).unwrap();
    sup.wait_console("app: unhealthy");
    // The new instance recreates the file and becomes healthy again.
    sup.wait_until("restarted and healthy", |st| {
        st.services[0].restarts == 1 && st.services[0].health == Some(true)
    });
    let runs = std::fs::read_to_string(sup.path("runs")).unwrap();
    assert_eq!(runs.lines().count(), 2);
}

#[test]
fn http_probe_reports_health_without_restart() {
    use std::os::unix::fs::PermissionsExt;
    let port = 20_000 + (marker() % 20_000);
    let sup = Sup::prepare(&[(
        "web",
        &format!(
            r#"command = "/usr/bin/socat"
args = ["TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork", "EXEC:{{dir}}/respond.sh"]
[[probe]]
kind = "http"
address = "127.0.0.1:{port}"
path = "/health"
interval_ms = 50
rise = 1
fall = 2
"#
        ),
    )]);
    let script = sup.path("respond.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nread request\nif [ -e {}/up ]; then printf 'HTTP/1.0 200 OK\\r\\n\\r\\n'; else printf 'HTTP/1.0 503 No\\r\\n\\r\\n'; fi\n",
            sup.dir.path().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let sup = sup.launch(&[]);
    sup.wait_until("unhealthy while 503", |st| {
        st.services[0].health == Some(false)
    });
    // The console is read by another thread: wait for the line.
    sup.wait_console("web: unhealthy (HTTP 503)");
    std::fs::write(sup.path("up"), "").unwrap();
    sup.wait_until("healthy once 200", |st| st.services[0].health == Some(true));
    assert_eq!(sup.service("web").restarts, 0);
    sup.wait_console("web: healthy (HTTP 200)");
}
