//! The three ways to read a [`NodeHealth`]: the technician's table
//! (`flexctl health`), the monitoring-plugin line with perfdata
//! (Nagios/Icinga check command, exit code 0/1/2/3) and the Prometheus text
//! exposition format (version 0.0.4) for `/metrics`.
//!
//! Pure functions of the health value; no I/O.

use crate::verdict::{CheckKind, CheckVerdict, Finding, Metric, NodeHealth};
use crate::Status;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Exit code for `flexctl health`: the overall status's plugin code.
pub fn exit_code(h: &NodeHealth) -> i32 {
    h.overall.exit_code()
}

/// The short table a technician reads, one line per check and one
/// indented line per non-OK finding. `now` is Unix seconds (for ages).
pub fn render_table(h: &NodeHealth, now: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "node {}: {}", h.node, h.overall);
    let _ = writeln!(out, "{:<9} {:<9} {:>6}  DETAIL", "CHECK", "STATUS", "AGE");
    for c in &h.checks {
        let age = c
            .observed_at
            .map(|t| format!("{}s", now.saturating_sub(t)))
            .unwrap_or_else(|| "-".to_string());
        let ok_line = c.findings.iter().all(|f| f.status == Status::Ok);
        let _ = writeln!(
            out,
            "{:<9} {:<9} {:>6}  {}",
            c.check.as_str(),
            c.status.label(),
            age,
            if ok_line || c.findings.is_empty() {
                c.summary.as_str()
            } else {
                ""
            }
            .trim_end()
        );
        for f in c.findings.iter().filter(|f| f.status != Status::Ok) {
            let _ = writeln!(
                out,
                "{:<9} {:<9} {:>6}  {}: {}",
                "",
                f.status.label(),
                "",
                f.subject,
                f.detail
            );
        }
    }
    // Trailing spaces from empty detail columns are noise for the eye.
    out.lines()
        .map(str::trim_end)
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Perfdata label: letters, digits, `_` only (Nagios allows more, but
/// quoting rules differ between consumers).
fn perf_label(m: &Metric) -> String {
    let mut s = m.name.clone();
    for (_, v) in &m.labels {
        s.push('_');
        s.push_str(v);
    }
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn fmt_value(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The monitoring-plugin output line:
/// `HEALTH WARNING - power: PSU2 failed on mains feed | label=value ...`.
/// Only the checks passed in are shown (all of them for the overall check).
pub fn plugin_line(h: &NodeHealth) -> String {
    let bad: Vec<String> = h
        .checks
        .iter()
        .filter(|c| c.status != Status::Ok)
        .map(|c| format!("{}: {}", c.check, c.summary))
        .collect();
    let text = if bad.is_empty() {
        h.checks
            .iter()
            .map(|c| format!("{}: {}", c.check, c.summary))
            .collect::<Vec<_>>()
            .join("; ")
    } else {
        bad.join("; ")
    };
    // `|` would start perfdata early.
    let text = text.replace('|', "/");
    let mut perf = Vec::new();
    for c in &h.checks {
        perf.push(format!("{}_status={}", c.check, c.status.exit_code()));
        for m in &c.metrics {
            perf.push(format!(
                "{}={}{}",
                perf_label(m),
                fmt_value(m.value),
                m.unit
            ));
        }
    }
    format!("HEALTH {} - {} | {}", h.overall, text, perf.join(" "))
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn help_for(name: &str) -> &'static str {
    match name {
        "raid_array_status" => "md array verdict (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)",
        "raid_missing_devices" => "md devices missing from the array",
        "raid_sync_percent" => "md resync/recovery/check progress in percent (100 when idle)",
        "raid_mismatch_sectors" => "md mismatch_cnt from the last check",
        "psu_working" => "1 when the PSU in this bay delivers power",
        "power_feed_working_psus" => "working PSUs per power feed",
        "power_working_psus" => "working PSUs in the chassis",
        "power_source_disagreement" => {
            "1 when the power sources (IPMI, CMM SNMP) disagree about this PSU"
        }
        "power_source_status" => {
            "power source state (0 OK, 1 WARNING failing, 3 UNKNOWN no fresh reading)"
        }
        "nic_up" => "1 when the node NIC link is up",
        "switch_module_reachable" => "1 when the switch module answered SNMP",
        "uplink_up" => "1 when the external uplink port is operationally up",
        "switch_uplinks_up" => "external uplinks up per switch module",
        "uplink_speed_mbps" => "external uplink speed from IF-MIB ifHighSpeed (Mbit/s)",
        "service_status" => "supervised service verdict (0 OK .. 3 UNKNOWN)",
        "vip_status" => "shared-IP verdict (0 OK .. 3 UNKNOWN)",
        _ => "flexvisor health reading",
    }
}

/// Prometheus text exposition: `flexvisor_health_status{check}` per check,
/// `flexvisor_health_overall`, and every metric as a gauge prefixed
/// `flexvisor_`, all labelled with the node.
pub fn prometheus(h: &NodeHealth) -> String {
    let node = escape_label(&h.node);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP flexvisor_health_overall Node health (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)"
    );
    let _ = writeln!(out, "# TYPE flexvisor_health_overall gauge");
    let _ = writeln!(
        out,
        "flexvisor_health_overall{{node=\"{node}\"}} {}",
        h.overall.gauge()
    );
    let _ = writeln!(
        out,
        "# HELP flexvisor_health_status Per-check health (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)"
    );
    let _ = writeln!(out, "# TYPE flexvisor_health_status gauge");
    for c in &h.checks {
        let _ = writeln!(
            out,
            "flexvisor_health_status{{node=\"{node}\",check=\"{}\"}} {}",
            c.check,
            c.status.gauge()
        );
    }
    let mut by_name: BTreeMap<&str, Vec<&Metric>> = BTreeMap::new();
    for m in h.checks.iter().flat_map(|c| &c.metrics) {
        by_name.entry(m.name.as_str()).or_default().push(m);
    }
    for (name, ms) in by_name {
        let _ = writeln!(out, "# HELP flexvisor_{name} {}", help_for(name));
        let _ = writeln!(out, "# TYPE flexvisor_{name} gauge");
        for m in ms {
            let mut labels = format!("node=\"{node}\"");
            for (k, v) in &m.labels {
                let _ = write!(labels, ",{k}=\"{}\"", escape_label(v));
            }
            let _ = writeln!(out, "flexvisor_{name}{{{labels}}} {}", fmt_value(m.value));
        }
    }
    out
}

/// Everything `flexctl health [--json] [--check X]` prints and its exit
/// code, so the CLI stays thin: the table (or JSON) on stdout, then the
/// monitoring-plugin line when not JSON.
pub fn cli_output(h: &NodeHealth, check: Option<CheckKind>, json: bool, now: u64) -> (String, i32) {
    let selected = match check {
        Some(k) => h.select(k),
        None => h.clone(),
    };
    let text = if json {
        // NodeHealth holds only strings, numbers and enums: serialization
        // cannot fail; fall back to an UNKNOWN line if it ever does.
        serde_json::to_string_pretty(&selected)
            .map(|s| s + "\n")
            .unwrap_or_else(|e| format!("HEALTH UNKNOWN - cannot encode JSON: {e}\n"))
    } else {
        format!(
            "{}{}\n",
            render_table(&selected, now),
            plugin_line(&selected)
        )
    };
    (text, exit_code(&selected))
}

/// Penalty for the shared-IP priority: for each check, the weight of its
/// status (from the profile). UNKNOWN counts as WARNING.
pub fn priority_penalty(h: &NodeHealth, weights: &BTreeMap<CheckKind, StatusWeights>) -> u32 {
    h.checks
        .iter()
        .filter_map(|c| {
            let w = weights.get(&c.check)?;
            Some(match c.status {
                Status::Ok => 0,
                Status::Warning | Status::Unknown => w.warning,
                Status::Critical => w.critical,
            })
        })
        .sum()
}

/// Priority weights of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StatusWeights {
    /// Subtracted when the check is WARNING or UNKNOWN.
    pub warning: u32,
    /// Subtracted when the check is CRITICAL.
    pub critical: u32,
}

/// State of one supervised service as the supervisor reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServiceReport {
    /// Service name (`sip-proxy`).
    pub name: String,
    /// Its status.
    pub status: Status,
    /// Detail (`ready`, `backoff 3/5`, `failed: exit 1`).
    pub detail: String,
}

/// Build the `services` verdict the supervisor pushes into the monitor.
pub fn services_verdict(services: &[ServiceReport], now: u64) -> CheckVerdict {
    let findings = services
        .iter()
        .map(|s| Finding {
            subject: s.name.clone(),
            status: s.status,
            detail: s.detail.clone(),
        })
        .collect();
    let metrics = services
        .iter()
        .map(|s| {
            Metric::labelled(
                "service_status",
                "service",
                &s.name,
                f64::from(s.status.gauge()),
            )
        })
        .collect();
    CheckVerdict::from_findings(
        CheckKind::Services,
        findings,
        metrics,
        format!("{} service(s) ready", services.len()),
    )
    .observed(now)
}

/// Build the `vip` verdict (shared IP / VRRP) the supervisor pushes in.
pub fn vip_verdict(instance: &str, status: Status, detail: &str, now: u64) -> CheckVerdict {
    CheckVerdict::from_findings(
        CheckKind::Vip,
        vec![Finding {
            subject: instance.to_string(),
            status,
            detail: detail.to_string(),
        }],
        vec![Metric::labelled(
            "vip_status",
            "instance",
            instance,
            f64::from(status.gauge()),
        )],
        format!("{instance} {detail}"),
    )
    .observed(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> NodeHealth {
        let raid = CheckVerdict::from_findings(
            CheckKind::Raid,
            vec![Finding {
                subject: "md0".into(),
                status: Status::Warning,
                detail: "rebuilding 8.5%, finish in 42s".into(),
            }],
            vec![Metric::labelled("raid_sync_percent", "array", "md0", 8.5).with_unit("%")],
            "clean".into(),
        )
        .observed(95);
        let svc = services_verdict(
            &[ServiceReport {
                name: "sip-proxy".into(),
                status: Status::Ok,
                detail: "ready".into(),
            }],
            99,
        );
        NodeHealth::new("db1a", vec![svc, raid], 100)
    }

    #[test]
    fn table_shows_check_status_age_and_bad_findings() {
        let t = render_table(&sample(), 100);
        let expected = "node db1a: WARNING
CHECK     STATUS       AGE  DETAIL
raid      WARNING       5s
          WARNING           md0: rebuilding 8.5%, finish in 42s
services  OK            1s  1 service(s) ready
";
        assert_eq!(t, expected);
    }

    #[test]
    fn plugin_line_has_text_then_perfdata() {
        let l = plugin_line(&sample());
        assert_eq!(
            l,
            "HEALTH WARNING - raid: md0 rebuilding 8.5%, finish in 42s | raid_status=1 raid_sync_percent_md0=8.5% services_status=0 service_status_sip_proxy=0"
        );
        assert_eq!(exit_code(&sample()), 1);
    }

    #[test]
    fn prometheus_exposition_has_help_type_and_labels() {
        let p = prometheus(&sample());
        assert!(
            p.contains("flexvisor_health_overall{node=\"db1a\"} 1\n"),
            "{p}"
        );
        assert!(
            p.contains("flexvisor_health_status{node=\"db1a\",check=\"raid\"} 1\n"),
            "{p}"
        );
        assert!(
            p.contains("# TYPE flexvisor_raid_sync_percent gauge\n"),
            "{p}"
        );
        assert!(
            p.contains("flexvisor_raid_sync_percent{node=\"db1a\",array=\"md0\"} 8.5\n"),
            "{p}"
        );
        assert!(
            p.contains("flexvisor_service_status{node=\"db1a\",service=\"sip-proxy\"} 0\n"),
            "{p}"
        );
        for line in p.lines().filter(|l| !l.starts_with('#')) {
            let (_, v) = line.rsplit_once(' ').expect("value");
            assert!(v.parse::<f64>().is_ok(), "{line}");
        }
    }

    #[test]
    fn cli_output_selects_a_check_and_maps_exit_codes() {
        let (text, code) = cli_output(&sample(), Some(CheckKind::Services), false, 100);
        assert_eq!(code, 0);
        assert!(text.starts_with("node db1a: OK\n"), "{text}");
        assert!(text.ends_with("HEALTH OK - services: 1 service(s) ready | services_status=0 service_status_sip_proxy=0\n"), "{text}");
        let (json, code) = cli_output(&sample(), None, true, 100);
        assert_eq!(code, 1);
        let back: NodeHealth = serde_json::from_str(&json).expect("json");
        assert_eq!(back, sample());
        let (_, code) = cli_output(&sample(), Some(CheckKind::Power), false, 100);
        assert_eq!(code, 3, "a check this node does not run is UNKNOWN");
    }

    #[test]
    fn priority_penalty_weights_statuses() {
        let mut w = BTreeMap::new();
        w.insert(
            CheckKind::Raid,
            StatusWeights {
                warning: 5,
                critical: 50,
            },
        );
        w.insert(
            CheckKind::Services,
            StatusWeights {
                warning: 10,
                critical: 100,
            },
        );
        assert_eq!(priority_penalty(&sample(), &w), 5);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\n"), "a\\\"b\\\\c\\n");
    }
}
