//! `billing-bench`: CDRs per second mediated, rated and committed by the
//! billing daemon, side by side in one run with the anchor: the same rows
//! loaded into an identical table with the `mariadb` client's bulk
//! (extended) INSERTs, as produced by `mariadb-dump`.
//!
//! Both run against the same private MariaDB (started here, removed at the
//! end). The spool is generated in the proxy's format (not timed); billing
//! runs in-process exactly as `billing --once` does (parse, mediate, rate,
//! local outbox with fsync, one central transaction per batch). A third
//! row shows parse + mediate + rate alone, in memory. Build with the same
//! profile as production: `cargo build --release -p billing`, then run
//! `target/release/billing-bench`.

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use billing::config::Config;
use billing::daemon::{now_ms, Daemon};
use billing::event::{parse_line, Event, EventKind};
use billing::mediation::Mediator;
use billing::rating::{Fee, Profile, Profiles};
use billing::testbed::{find_binary, MariaDb, TempDir};

const HELP: &str = "\
billing-bench: CDRs/s mediated+rated+committed by billing vs mariadb bulk INSERT

USAGE:
    billing-bench [--calls N] [--batch-lines L] [--prefixes P] [--json]

OPTIONS:
    --calls N         calls (start+stop pairs) in the spool (default 50000)
    --batch-lines L   spool lines per batch/transaction (default 2000)
    --prefixes P      destination prefixes in the billing profile (default 1000)
    --json            print the rows as JSON
    -h, --help        this text
";

struct Opts {
    calls: u64,
    batch_lines: u64,
    prefixes: u64,
    json: bool,
}

fn parse_opts() -> anyhow::Result<Option<Opts>> {
    let mut o = Opts {
        calls: 50_000,
        batch_lines: 2000,
        prefixes: 1000,
        json: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut num = |name: &str| -> anyhow::Result<u64> {
            let v = it
                .next()
                .with_context(|| format!("{name} needs a number"))?;
            v.parse()
                .with_context(|| format!("{name} {v}: not a number"))
        };
        match a.as_str() {
            "-h" | "--help" => {
                print!("{HELP}");
                return Ok(None);
            }
            "--calls" => o.calls = num("--calls")?.max(1),
            "--batch-lines" => o.batch_lines = num("--batch-lines")?.max(1),
            "--prefixes" => o.prefixes = num("--prefixes")?.max(1),
            "--json" => o.json = true,
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    Ok(Some(o))
}

fn event(kind: EventKind, i: u64, t: u64, prefixes: u64) -> Event {
    Event {
        kind,
        call_id: format!("bench-{i}@10.0.0.1"),
        time_ms: t,
        from_tag: format!("f{i}"),
        to_tag: format!("t{i}"),
        caller: format!("user{}@bench.example.com", i % 5000),
        callee: format!(
            "+{}{:06}@bench.example.com",
            100 + i % prefixes,
            i % 1_000_000
        ),
        caller_customer: Some(1 + i % 10),
        callee_customer: None,
        node: "proxy1a".into(),
        reason: (kind == EventKind::Stop).then(|| "bye".into()),
        answer_ms: None,
    }
}

/// Writes the spool in the proxy's format: 8 MiB files, oldest first.
fn write_spool(dir: &Path, o: &Opts) -> anyhow::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let t0 = now_ms() - 86_400_000;
    let mut lines = Vec::with_capacity(o.calls as usize * 2);
    for i in 0..o.calls {
        let t = t0 + i * 10;
        lines.push(serde_json::to_string(&event(
            EventKind::Start,
            i,
            t,
            o.prefixes,
        ))?);
        lines.push(serde_json::to_string(&event(
            EventKind::Stop,
            i,
            t + 1000 + (i * 7919) % 600_000,
            o.prefixes,
        ))?);
    }
    // Interleave: stops of a call come a little later than its start.
    let mut file_no = 0;
    let mut buf = Vec::new();
    for l in &lines {
        buf.extend_from_slice(l.as_bytes());
        buf.push(b'\n');
        if buf.len() > 8 << 20 {
            std::fs::write(dir.join(format!("acc-{:013}-{file_no:06}.jsonl", t0)), &buf)?;
            file_no += 1;
            buf.clear();
        }
    }
    std::fs::write(dir.join(format!("acc-{:013}-{file_no:06}.jsonl", t0)), &buf)?;
    // The proxy's current (empty) file: everything before it is closed.
    std::fs::write(dir.join(format!("acc-{:013}-999999.jsonl", t0)), b"")?;
    Ok(lines)
}

fn seed_sql(o: &Opts) -> String {
    let mut s = String::from(
        "USE flexvisor;\nINSERT INTO billing_profiles (id, name, currency) VALUES (1, 'bench', 'EUR');\n",
    );
    s.push_str("INSERT INTO billing_fees (profile_id, destination_prefix, rate_per_minute, connect_fee, first_interval, next_interval) VALUES ");
    let fees: Vec<String> = (0..o.prefixes)
        .map(|p| format!("(1, '{}', {}, {}, 30, 6)", 100 + p, 1 + p % 50, p % 3))
        .collect();
    s.push_str(&fees.join(","));
    s.push_str(";\nINSERT INTO billing_customers (customer_id, profile_id) VALUES ");
    let custs: Vec<String> = (1..=10).map(|c| format!("({c}, 1)")).collect();
    s.push_str(&custs.join(","));
    s.push_str(";\n");
    s
}

fn profiles(o: &Opts) -> Profiles {
    let mut p = Profile {
        id: 1,
        name: "bench".into(),
        currency: "EUR".into(),
        fees: Default::default(),
    };
    for i in 0..o.prefixes {
        let prefix = (100 + i).to_string();
        p.fees.insert(
            prefix.clone(),
            Fee {
                prefix,
                rate_per_minute: 1 + i % 50,
                connect_fee: i % 3,
                first_interval: 30,
                next_interval: 6,
            },
        );
    }
    let mut ps = Profiles::default();
    ps.profiles.insert(1, p);
    ps.customers = (1..=10).map(|c| (c, 1)).collect();
    ps
}

struct Row {
    what: &'static str,
    cdrs: u64,
    secs: f64,
}

fn main() -> anyhow::Result<()> {
    let Some(o) = parse_opts()? else {
        return Ok(());
    };
    let dump = find_binary("mariadb-dump", "mariadb-client")?;
    let client = find_binary("mariadb", "mariadb-client")?;
    let db = MariaDb::start()?;
    db.client(&format!("USE flexvisor;\n{}", billing::central::SCHEMA))?;
    db.client(&seed_sql(&o))?;
    let dir = TempDir::new("billing-bench")?;
    let spool = dir.path().join("spool");
    eprintln!("writing {} calls to the spool …", o.calls);
    let lines = write_spool(&spool, &o)?;

    // 1. In memory: parse + mediate + rate.
    let ps = profiles(&o);
    let started = Instant::now();
    let mut m = Mediator::default();
    let mut n = 0u64;
    for (i, l) in lines.iter().enumerate() {
        let ev = parse_line(l).map_err(|e| anyhow::anyhow!("line {}: {e}", i + 1))?;
        if let Some(mut cdr) = m.on_event(ev, String::new()) {
            cdr.rate(&ps);
            n += 1;
        }
    }
    let mem = Row {
        what: "billing parse+mediate+rate, in memory",
        cdrs: n,
        secs: started.elapsed().as_secs_f64(),
    };
    drop(lines);

    // 2. billing --once, in-process.
    let cfg_text = format!(
        "node = \"bench\"\nspool_dir = \"{}\"\nstate_dir = \"{}\"\ncentral_url = \"{}\"\nbatch_lines = {}\npoll_ms = 10\n",
        spool.display(),
        dir.path().join("state").display(),
        db.url("flexvisor"),
        o.batch_lines
    );
    let cfg = Config::parse(&cfg_text, Path::new("bench.toml"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    eprintln!("billing --once …");
    let started = Instant::now();
    let left = rt.block_on(async {
        let mut d = Daemon::new(cfg, Arc::new(AtomicBool::new(false)))?;
        d.run(true).await
    })?;
    let billing_secs = started.elapsed().as_secs_f64();
    if left != 0 {
        bail!("billing left {left} batches uncommitted");
    }
    let rows: u64 = db
        .client("SELECT COUNT(*) FROM flexvisor.cdrs")?
        .trim()
        .parse()?;
    if rows != o.calls {
        bail!("expected {} CDRs, found {rows}", o.calls);
    }
    let billing_row = Row {
        what: "billing mediate+rate+commit (--once)",
        cdrs: rows,
        secs: billing_secs,
    };

    // 3. Anchor: the same rows, bulk INSERT through the mariadb client.
    let sock = format!("--socket={}", db.socket.display());
    let out = Command::new(&dump)
        .args([
            "--no-defaults",
            &sock,
            "-uroot",
            "--no-create-info",
            "--compact",
        ])
        .args([
            "--skip-add-locks",
            "--skip-disable-keys",
            "--extended-insert",
        ])
        .args(["flexvisor", "cdrs"])
        .output()?;
    if !out.status.success() {
        bail!("mariadb-dump: {}", String::from_utf8_lossy(&out.stderr));
    }
    let sql =
        String::from_utf8(out.stdout)?.replace("INSERT INTO `cdrs`", "INSERT INTO `cdrs_anchor`");
    db.client("CREATE TABLE flexvisor.cdrs_anchor LIKE flexvisor.cdrs")?;
    eprintln!("mariadb bulk INSERT of the same rows …");
    let started = Instant::now();
    let mut child = Command::new(&client)
        .args(["--no-defaults", &sock, "-uroot", "flexvisor"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    child
        .stdin
        .take()
        .context("mariadb stdin")?
        .write_all(sql.as_bytes())?;
    let st = child.wait()?;
    let anchor_secs = started.elapsed().as_secs_f64();
    if !st.success() {
        bail!("mariadb bulk insert failed: {st}");
    }
    let anchor_rows: u64 = db
        .client("SELECT COUNT(*) FROM flexvisor.cdrs_anchor")?
        .trim()
        .parse()?;
    let anchor = Row {
        what: "anchor: mariadb client bulk INSERT",
        cdrs: anchor_rows,
        secs: anchor_secs,
    };

    let anchor_rate = anchor.cdrs as f64 / anchor.secs;
    let rows = [billing_row, anchor, mem];
    if o.json {
        let v: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "what": r.what, "cdrs": r.cdrs, "seconds": r.secs,
                    "cdrs_per_sec": r.cdrs as f64 / r.secs,
                    "ratio_to_anchor": r.cdrs as f64 / r.secs / anchor_rate,
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(v));
    } else {
        println!(
            "{:<40} {:>9} {:>9} {:>11} {:>9}",
            "target", "CDRs", "seconds", "CDRs/s", "vs anchor"
        );
        for r in &rows {
            let rate = r.cdrs as f64 / r.secs;
            println!(
                "{:<40} {:>9} {:>9.2} {:>11.0} {:>8.2}x",
                r.what,
                r.cdrs,
                r.secs,
                rate,
                rate / anchor_rate
            );
        }
        println!(
            "(batch_lines {}, {} prefixes; billing fsyncs its outbox and state per batch and commits one transaction per batch)",
            o.batch_lines, o.prefixes
        );
    }
    Ok(())
}
