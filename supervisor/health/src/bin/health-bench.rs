//! health-bench: PSU scan against `ipmitool sdr type "Power Supply"` on the
//! same ipmi_sim, the CMM power module table over SNMP v3 against
//! net-snmp's `snmpwalk` / `snmpbulkwalk` / `snmpget` of the same table on
//! the same snmpd, and a whole health check answered from the monitor's
//! memory. Prints a table (or JSON with --json) with the anchors' figures
//! from the same run and the ratios.

use anyhow::{bail, Context, Result};
use flexvisor_health::config::{HealthConfig, IpmiSource, PowerSettings, RaidSettings};
use flexvisor_health::power::cmm_snmp::{
    CmmPowerReader, COL_DETAILS, COL_EXISTS, COL_STATE, POWER_MODULE_ENTRY,
};
use flexvisor_health::power::ipmi::{IpmiTarget, PsuScanner};
use flexvisor_health::power::{Feed, PsuBay};
use flexvisor_health::report;
use flexvisor_health::testing::cmm_agent::CmmAgent;
use flexvisor_health::testing::ipmi_sim::{self, IpmiSim};
use flexvisor_health::testing::snmp_agent;
use flexvisor_health::uplinks::snmp::SnmpAuth;
use flexvisor_health::{CheckKind, Status};
use std::process::Command;
use std::time::{Duration, Instant};

const HELP: &str = "health-bench: measure flexvisor-health against ipmitool on ipmi_sim

USAGE: health-bench [--iterations N] [--json]

  --iterations N   runs per measurement (default 20)
  --json           print the results as JSON
  -h, --help       this text

Starts its own ipmi_sim (package openipmi) and snmpd (package snmpd)
on loopback ports; needs ipmitool and net-snmp's tools (package snmp).
Rows (ratio = median / the anchor's median from the same run):
  ipmitool sdr type \"Power Supply\"   anchor: new lanplus session, SDR, readings
  psu scan (cold)                    ours: new RMCP+ session, partial SDR reads, readings
  psu scan (warm)                    ours: cached session and SDR, readings only
  health check from memory           latest NodeHealth + table + plugin line + JSON
  snmpwalk powerModuleHealthTable    anchor: new process, v3 discovery, GETNEXT walk
  snmpbulkwalk (same table)          anchor: same with GETBULK
  snmpget exists/state/details       anchor: one GET of the 18 objects of 6 modules
  cmm snmp read (cold)               ours: new v3 session (discovery) + GET
  cmm snmp read (warm)               ours: open session, one GET of 18 objects
  cmm snmp read (cold, v2c)          ours: new v2c socket + GET (no USM key derivation)
";

#[derive(Debug, Clone, serde::Serialize)]
struct Row {
    name: String,
    runs: usize,
    median_ms: f64,
    p95_ms: f64,
    /// Anchor row this one is compared with.
    anchor: Option<String>,
    /// median / anchor median.
    ratio: Option<f64>,
}

impl Row {
    fn vs(mut self, anchor: &Row) -> Row {
        self.ratio = (anchor.median_ms > 0.0).then(|| self.median_ms / anchor.median_ms);
        self.anchor = Some(anchor.name.clone());
        self
    }
}

fn stats(name: &str, mut samples: Vec<Duration>) -> Row {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = samples
        .get(samples.len() / 2)
        .copied()
        .map(ms)
        .unwrap_or(0.0);
    let p95_idx = ((samples.len() as f64) * 0.95).ceil() as usize;
    let p95 = samples
        .get(
            p95_idx
                .saturating_sub(1)
                .min(samples.len().saturating_sub(1)),
        )
        .copied()
        .map(ms)
        .unwrap_or(0.0);
    Row {
        name: name.to_string(),
        runs: samples.len(),
        median_ms: median,
        p95_ms: p95,
        anchor: None,
        ratio: None,
    }
}

fn main() -> Result<()> {
    let mut iterations = 20usize;
    let mut json = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(());
            }
            "--json" => json = true,
            "--iterations" => {
                iterations = args
                    .next()
                    .context("--iterations needs a number")?
                    .parse()
                    .context("--iterations needs a number")?;
                if iterations == 0 {
                    bail!("--iterations must be at least 1");
                }
            }
            other => bail!("unknown argument {other:?}; see --help"),
        }
    }

    let sim = IpmiSim::start().context("starting ipmi_sim")?;
    let target = IpmiTarget::Lan {
        host: "127.0.0.1".into(),
        port: sim.lan_port,
        username: ipmi_sim::USER.into(),
        password: ipmi_sim::PASSWORD.into(),
    };
    let timeout = Duration::from_secs(5);

    // Anchor: ipmitool, a new process and session each time.
    let mut anchor = Vec::new();
    for _ in 0..iterations {
        let t = Instant::now();
        let out = Command::new("ipmitool")
            .args(sim.ipmitool_args())
            .args(["sdr", "type", "Power Supply"])
            .output()
            .context("running ipmitool (package ipmitool)")?;
        anchor.push(t.elapsed());
        if !out.status.success()
            || ipmi_sim::parse_ipmitool_sdr_type(&String::from_utf8_lossy(&out.stdout)).len() != 6
        {
            bail!(
                "ipmitool did not list 6 PSUs: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    let mut cold = Vec::new();
    let mut cold_requests = 0;
    for _ in 0..iterations {
        let t = Instant::now();
        let mut s = PsuScanner::new(target.clone(), timeout);
        let r = s.scan(0).context("cold PSU scan")?;
        cold.push(t.elapsed());
        cold_requests = s.last_requests;
        if r.psus.len() != 6 {
            bail!("scan found {} PSUs", r.psus.len());
        }
    }

    let mut warm = Vec::new();
    let mut scanner = PsuScanner::new(target, timeout);
    scanner.scan(0).context("priming scan")?;
    for _ in 0..iterations {
        let t = Instant::now();
        let r = scanner.scan(0).context("warm PSU scan")?;
        warm.push(t.elapsed());
        if r.psus.len() != 6 {
            bail!("scan found {} PSUs", r.psus.len());
        }
    }
    let warm_requests = scanner.last_requests;

    // Whole health check from memory, with a live monitor.
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("proc"))?;
    std::fs::write(
        dir.path().join("proc/mdstat"),
        "Personalities : [raid1]\nmd0 : active raid1 sdb1[1] sda1[0]\n      1046528 blocks super 1.2 [2/2] [UU]\n\nunused devices: <none>\n",
    )?;
    std::fs::write(
        dir.path().join("secrets"),
        format!("cmm = {}\n", ipmi_sim::PASSWORD),
    )?;
    let cfg = HealthConfig {
        node: "bench".into(),
        system_root: dir.path().to_path_buf(),
        secrets_file: Some(dir.path().join("secrets")),
        raid: RaidSettings {
            expected_arrays: vec!["md0".into()],
            fallback_poll_secs: 5,
        },
        power: Some(PowerSettings {
            bays: (1..=6)
                .map(|b| PsuBay {
                    bay: b,
                    sensor: format!("PSU{b}"),
                    feed: if b <= 3 { Feed::Mains } else { Feed::Ups },
                })
                .collect(),
            n: 3,
            sources: vec![IpmiSource::Lan {
                host: "127.0.0.1".into(),
                port: sim.lan_port,
                username: ipmi_sim::USER.into(),
                password_ref: "cmm".into(),
            }],
            poll_secs: 1,
            stale_after_secs: 30,
            timeout_ms: 3000,
        }),
        uplinks: None,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let memory = rt.block_on(async {
        let (handle, _join) = flexvisor_health::monitor::spawn(cfg)?;
        let mut rx = handle.health();
        tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                if rx
                    .borrow_and_update()
                    .check(CheckKind::Power)
                    .is_some_and(|c| c.status == Status::Ok)
                {
                    return;
                }
                let _ = rx.changed().await;
            }
        })
        .await
        .context("monitor did not read power within 30s")?;
        let mut samples = Vec::new();
        let mut sink = 0usize;
        for _ in 0..iterations.max(200) {
            let t = Instant::now();
            let h = handle.latest();
            let table = report::render_table(&h, h.generated_at);
            let line = report::plugin_line(&h);
            let js = serde_json::to_string(&h)?;
            sink += table.len() + line.len() + js.len();
            samples.push(t.elapsed());
        }
        handle.stop();
        anyhow::ensure!(sink > 0, "empty output");
        Ok::<_, anyhow::Error>(samples)
    })?;

    let cmm_rows = bench_cmm(iterations)?;

    let ipmitool = stats("ipmitool sdr type \"Power Supply\"", anchor);
    let mut rows = vec![
        stats(&format!("psu scan (cold, {cold_requests} requests)"), cold).vs(&ipmitool),
        stats(&format!("psu scan (warm, {warm_requests} requests)"), warm).vs(&ipmitool),
        stats("health check from memory", memory).vs(&ipmitool),
    ];
    rows.insert(0, ipmitool);
    rows.extend(cmm_rows);
    if json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
    } else {
        println!(
            "{:<44} {:>5} {:>10} {:>10}  ratio (vs anchor)",
            "measurement", "runs", "median ms", "p95 ms"
        );
        for r in &rows {
            let ratio = match (&r.ratio, &r.anchor) {
                (Some(x), Some(a)) => format!("{x:.3}x {a}"),
                _ => "(anchor)".to_string(),
            };
            println!(
                "{:<44} {:>5} {:>10.3} {:>10.3}  {}",
                r.name, r.runs, r.median_ms, r.p95_ms, ratio
            );
        }
    }
    Ok(())
}

fn run_tool(tool: &str, args: &[String]) -> Result<String> {
    let out = Command::new(tool)
        .args(args)
        .env("MIBS", "")
        .output()
        .with_context(|| format!("running {tool} (package snmp)"))?;
    if !out.status.success() {
        bail!("{tool}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// CMM power module table over SNMP v3: net-snmp's tools vs our reader.
fn bench_cmm(iterations: usize) -> Result<Vec<Row>> {
    let cmm = CmmAgent::start(6).context("starting snmpd as CMM")?;
    let dotted = |parts: &[u64]| {
        parts
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(".")
    };
    let table = format!(
        ".{}",
        dotted(&POWER_MODULE_ENTRY[..POWER_MODULE_ENTRY.len() - 1])
    );
    let mut get_oids = Vec::new();
    for bay in 1..=6u64 {
        for col in [COL_EXISTS, COL_STATE, COL_DETAILS] {
            let mut o = POWER_MODULE_ENTRY.to_vec();
            o.extend([col, bay]);
            get_oids.push(format!(".{}", dotted(&o)));
        }
    }
    let base = cmm.snmpd().netsnmp_v3_args();
    let measure = |tool: &str, extra: &[String], expect_lines: usize| -> Result<Vec<Duration>> {
        let mut args = base.clone();
        args.extend_from_slice(extra);
        let mut samples = Vec::new();
        for _ in 0..iterations {
            let t = Instant::now();
            let out = run_tool(tool, &args)?;
            samples.push(t.elapsed());
            let lines = out.lines().count();
            if lines != expect_lines {
                bail!("{tool} printed {lines} lines, expected {expect_lines}:\n{out}");
            }
        }
        Ok(samples)
    };
    // Five columns (index, exists, state, details, description) x 6 rows.
    let walk = measure("snmpwalk", std::slice::from_ref(&table), 30)?;
    let bulk = measure("snmpbulkwalk", std::slice::from_ref(&table), 30)?;
    let get = measure("snmpget", &get_oids, 18)?;

    let bays: Vec<PsuBay> = (1..=6)
        .map(|b| PsuBay {
            bay: b,
            sensor: format!("PSU{b}"),
            feed: if b <= 3 { Feed::Mains } else { Feed::Ups },
        })
        .collect();
    let auth = SnmpAuth::V3 {
        user: snmp_agent::V3_USER.into(),
        auth_protocol: "sha1".into(),
        auth_password: snmp_agent::V3_AUTH.into(),
        privacy_protocol: Some("aes128".into()),
        privacy_password: Some(snmp_agent::V3_PRIV.into()),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let timeout = Duration::from_secs(3);
    let (cold, cold_v2c, warm, warm_requests) = rt.block_on(async {
        let mut cold = Vec::new();
        for _ in 0..iterations {
            let t = Instant::now();
            let mut r = CmmPowerReader::new(&cmm.address(), auth.clone(), timeout);
            let reading = r.read(&bays, 0).await.context("cold CMM read")?;
            cold.push(t.elapsed());
            anyhow::ensure!(reading.psus.len() == 6, "read {} PSUs", reading.psus.len());
        }
        let mut reader = CmmPowerReader::new(&cmm.address(), auth.clone(), timeout);
        reader.read(&bays, 0).await.context("priming CMM read")?;
        let mut warm = Vec::new();
        for _ in 0..iterations {
            let t = Instant::now();
            let reading = reader.read(&bays, 0).await.context("warm CMM read")?;
            warm.push(t.elapsed());
            anyhow::ensure!(reading.psus.len() == 6, "read {} PSUs", reading.psus.len());
        }
        let v2c = SnmpAuth::V2c {
            community: snmp_agent::COMMUNITY.into(),
        };
        let mut cold_v2c = Vec::new();
        for _ in 0..iterations {
            let t = Instant::now();
            let mut r = CmmPowerReader::new(&cmm.address(), v2c.clone(), timeout);
            let reading = r.read(&bays, 0).await.context("cold v2c CMM read")?;
            cold_v2c.push(t.elapsed());
            anyhow::ensure!(reading.psus.len() == 6, "read {} PSUs", reading.psus.len());
        }
        Ok::<_, anyhow::Error>((cold, cold_v2c, warm, reader.last_requests))
    })?;
    let walk = stats("snmpwalk powerModuleHealthTable (v3)", walk);
    let bulk = stats("snmpbulkwalk powerModuleHealthTable (v3)", bulk).vs(&walk);
    let get = stats("snmpget exists/state/details x6 (v3)", get);
    let cold = stats("cmm snmp read (cold: v3 discovery + GET)", cold);
    let warm = stats(
        &format!("cmm snmp read (warm, {warm_requests} request)"),
        warm,
    );
    let cold_v2c = stats("cmm snmp read (cold, v2c: new socket + GET)", cold_v2c);
    Ok(vec![
        cold_v2c.vs(&get),
        cold.clone().vs(&walk),
        cold.vs(&get),
        warm.clone().vs(&walk),
        warm.vs(&get),
        walk,
        bulk,
        get,
    ])
}
