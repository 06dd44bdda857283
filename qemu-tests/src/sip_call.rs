//! Scenario 7, `sip-call-failover`: a registered call through the load
//! balancers survives a failover of the active proxy.
//!
//! What an operator would do and see, on the web1, db1, lb1 and proxy1
//! pairs: an API admin is created with `web-api admin add` against the db
//! pair's shared address (the harness has no shell on the nodes), two
//! subscribers are provisioned over HTTPS on the web pair's shared address,
//! and two sipp phones on the customers' side (the run's namespace, on the
//! external network's gateway address) register through the lb pair's
//! shared address and call each other. The active proxy is then powered off
//! (QMP quit); the call's in-dialog requests (a re-INVITE, then the BYE)
//! must go through the standby, which holds the proxy pair's shared address
//! now, and a new call between the subscribers registered before the
//! failover must work.
//!
//! "Survives" means signalling: the dialog stays usable end to end. Media
//! is not asserted: the image's sip-proxy engages no media relay, so RTP
//! flows between the phones and never crossed the failed node (and
//! media-relay keeps its state in the node's local Redis, which the standby
//! does not have). Each gap in the services is ended as BLOCKED with the
//! evidence, never passed over.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chassis::RoleKind;

use crate::netns::Netns;
use crate::proc::Daemon;
use crate::report::Outcome;
use crate::scenario::{takeover_bound, Ctx, Step, SETTLE};

/// The pairs the scenario boots.
pub const PAIRS: &[&str] = &["web1", "db1", "lb1", "proxy1"];

/// The API admin the harness creates.
const ADMIN: &str = "fvq-admin";
/// Its password (the harness's own chassis only).
const ADMIN_PASSWORD: &str = "fvq-admin-password";
/// The subscribers: (user, password, the phone's local UDP port).
const ALICE: (&str, &str, u16) = ("alice", "fvq-alice-pw", 5071);
const BOB: (&str, &str, u16) = ("bob", "fvq-bob-pw", 5072);
/// How long one sipp phone may take for its whole scenario.
const PHONE_TIMEOUT: Duration = Duration::from_secs(300);

/// Addresses of the SIP path, read from the node configurations.
#[derive(Debug, Clone)]
struct Path7 {
    /// The phones' address: the external network's gateway, on the
    /// namespace's external tap.
    ua: IpAddr,
    /// The lb pair's shared external address, port 5060, and its VRID.
    lb_vip: SocketAddr,
    lb_vrid: u8,
    /// Each lb node's own external address, port 5060 (diagnosis only).
    lb_fronts: Vec<(String, SocketAddr)>,
    /// The proxy pair, its VRID and its shared internal address.
    proxy_pair: String,
    proxy_vrid: u8,
    proxy_vip: IpAddr,
    /// The web pair's shared external address.
    web_vip: IpAddr,
    /// The db pair's shared internal address.
    db_vip: IpAddr,
    /// An internal-network address for the harness's own tap (CIDR).
    harness_internal: String,
}

fn topology(ctx: &mut Ctx) -> Result<Path7, Step> {
    let nodes: Vec<chassis::NodeConfig> = ctx
        .chassis()?
        .nodes
        .iter()
        .map(|n| n.config.clone())
        .collect();
    let of = |role: RoleKind| nodes.iter().filter(move |n| n.role == role);
    let vip = |role: RoleKind, network: &str| {
        of(role)
            .flat_map(|n| n.vips.iter())
            .find(|v| v.network == network)
            .cloned()
            .ok_or_else(|| {
                Step::Fail(format!(
                    "no {} node with a shared {network} address in this chassis",
                    role.as_str()
                ))
            })
    };
    let lb = vip(RoleKind::Lb, "external")?;
    let proxy = vip(RoleKind::Proxy, "internal")?;
    let web = vip(RoleKind::Web, "external")?;
    let db = vip(RoleKind::Db, "internal")?;
    let ext = of(RoleKind::Lb)
        .flat_map(|n| n.network.addresses.iter())
        .find(|a| a.network == "external")
        .ok_or_else(|| Step::Fail("the lb nodes have no external address".into()))?;
    let ua = ext.gateway.ok_or_else(|| {
        Step::Blocked("the profile's external network has no gateway for the phones".into())
    })?;
    let lb_fronts = of(RoleKind::Lb)
        .filter_map(|n| {
            n.network
                .addresses
                .iter()
                .find(|a| a.network == "external")
                .map(|a| (n.hostname.clone(), SocketAddr::new(a.address, 5060)))
        })
        .collect();
    let int = of(RoleKind::Db)
        .flat_map(|n| n.network.addresses.iter())
        .find(|a| a.network == "internal")
        .ok_or_else(|| Step::Fail("the db nodes have no internal address".into()))?;
    let taken: Vec<IpAddr> = nodes
        .iter()
        .flat_map(|n| {
            n.network
                .addresses
                .iter()
                .map(|a| a.address)
                .chain(n.vips.iter().map(|v| v.address))
        })
        .collect();
    let harness_internal = spare_address(int.address, int.prefix_len, &taken)
        .map(|a| format!("{a}/{}", int.prefix_len))
        .ok_or_else(|| {
            Step::Fail(format!(
                "no spare address in the internal network {}/{}",
                int.address, int.prefix_len
            ))
        })?;
    Ok(Path7 {
        ua,
        lb_vip: SocketAddr::new(lb.address, 5060),
        lb_vrid: lb.vrid,
        lb_fronts,
        proxy_pair: of(RoleKind::Proxy)
            .next()
            .map(|n| n.pair.name.clone())
            .unwrap_or_default(),
        proxy_vrid: proxy.vrid,
        proxy_vip: proxy.address,
        web_vip: web.address,
        db_vip: db.address,
        harness_internal,
    })
}

/// The highest host address of `addr/prefix` (IPv4) that no node uses.
fn spare_address(addr: IpAddr, prefix: u8, taken: &[IpAddr]) -> Option<IpAddr> {
    let IpAddr::V4(a) = addr else { return None };
    if !(8..=30).contains(&prefix) {
        return None;
    }
    let mask = u32::MAX << (32 - u32::from(prefix));
    let net = u32::from(a) & mask;
    let last = net | !mask;
    (1..64)
        .map(|i| IpAddr::V4(Ipv4Addr::from(last - i)))
        .find(|c| !taken.contains(c))
}

/// The value of `name` in the chassis secrets the images carry.
fn secret(ctx: &Ctx, name: &str) -> Result<String, Step> {
    let loaded = chassis::load_file(&ctx.cfg.profile).map_err(|e| Step::Fail(e.to_string()))?;
    let text = crate::guest::chassis_secrets(&loaded.profile);
    let entries = chassis::secrets::entries(&text)
        .map_err(|line| Step::Fail(format!("chassis secrets: line {line} is not name = value")))?;
    entries
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| (*v).to_owned())
        .ok_or_else(|| Step::Fail(format!("chassis secrets have no `{name}`")))
}

/// Run `cmd` with `stdin` as its input; its stdout, or an error with both
/// streams.
fn run_with_input(cmd: &mut Command, stdin: &str) -> Result<String, String> {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{what}: {e}"))?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(stdin.as_bytes())
            .map_err(|e| format!("{what}: writing stdin: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{what}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{what} ({}): {}", out.status, text.trim()))
    }
}

/// Create the API admin with `web-api admin add` against the db pair's
/// shared address, then provision the domain, a customer and both
/// subscribers over HTTPS on the web pair's shared address (curl).
fn provision(ctx: &mut Ctx, p: &Path7, dir: &Path, domain: &str) -> Result<(), Step> {
    crate::proc::require("curl", "curl")?;
    let ns = Arc::clone(&ctx.chassis()?.netns);
    let tap = ctx
        .chassis()?
        .external_tap_name()
        .ok_or_else(|| Step::Blocked("the profile has no external network".into()))?
        .to_owned();
    crate::proc::run(
        ns.command("ip")
            .args(["addr", "add", &p.harness_internal, "dev", &tap]),
    )?;
    let bins = {
        let mut quiet = |_: &str| {};
        crate::guest::static_bins(&ctx.cfg.workspace, &["web-api".into()], &mut quiet)
            .map_err(|m| Step::Blocked(format!("web-api binary: {}", m.0)))?
    };
    let web_api = bins.join("web-api");
    let pw = secret(ctx, "web-api.db_password")?;
    let cfg = dir.join("web-api-admin.toml");
    std::fs::write(
        &cfg,
        format!(
            "# qemu-tests: `web-api admin add` against the db pair, as an operator would.\n\
             listen = \"127.0.0.1:443\"\n\
             database_url = \"mysql://webapi:{pw}@{}:3306/provisioning\"\n\
             [tls]\ncert = \"{d}/unused-cert.pem\"\nkey = \"{d}/unused-key.pem\"\n",
            p.db_vip,
            d = dir.display()
        ),
    )
    .map_err(|e| Step::Fail(format!("{}: {e}", cfg.display())))?;
    let t0 = Instant::now();
    let mut last = String::new();
    let added = crate::proc::poll(SETTLE, || {
        let mut c = ns.command(&web_api.display().to_string());
        c.args(["admin", "add", "--config"]).arg(&cfg).args([
            "--username",
            ADMIN,
            "--iterations",
            "1000",
        ]);
        match run_with_input(&mut c, &format!("{ADMIN_PASSWORD}\n")) {
            Ok(_) => Some(()),
            Err(e) => {
                last = e;
                std::thread::sleep(Duration::from_secs(2));
                None
            }
        }
    });
    if added.is_none() {
        return Err(Step::Fail(format!(
            "web-api admin add against the db pair ({}) failed for {}s: {last}",
            p.db_vip,
            SETTLE.as_secs()
        )));
    }
    ctx.step(&format!(
        "API admin {ADMIN} created with `web-api admin add` against the db pair's {} after {:.1}s",
        p.db_vip,
        t0.elapsed().as_secs_f64()
    ));
    let base = format!("https://{}/api/v1", p.web_vip);
    let post = |what: &str, body: serde_json::Value| -> Result<serde_json::Value, Step> {
        let mut last = String::new();
        let got = crate::proc::poll(SETTLE, || {
            let r = crate::proc::run(ns.command("curl").args([
                "-sS",
                // The web nodes make a self-signed certificate at first start.
                "-k",
                "--max-time",
                "20",
                "-u",
                &format!("{ADMIN}:{ADMIN_PASSWORD}"),
                "-H",
                "Content-Type: application/json",
                "-d",
                &body.to_string(),
                "-w",
                "\n%{http_code}",
                &format!("{base}/{what}"),
            ]));
            match r {
                Ok(out) => {
                    let (json, code) = out.trim_end().rsplit_once('\n').unwrap_or(("", &out));
                    if code.trim() == "201" {
                        return serde_json::from_str::<serde_json::Value>(json).ok();
                    }
                    last = format!("HTTP {}: {json}", code.trim());
                }
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_secs(2));
            None
        });
        got.ok_or_else(|| {
            Step::Fail(format!(
                "POST {base}/{what} {body} not created within {}s: {last}",
                SETTLE.as_secs()
            ))
        })
    };
    post("domains", serde_json::json!({ "name": domain }))?;
    let customer = post("customers", serde_json::json!({ "name": "fvq-customer" }))?;
    let cid = customer["id"]
        .as_u64()
        .ok_or_else(|| Step::Fail(format!("customer created without an id: {customer}")))?;
    for (user, password, _) in [ALICE, BOB] {
        post(
            "subscribers",
            serde_json::json!({
                "username": user, "domain": domain, "password": password, "customer_id": cid
            }),
        )?;
    }
    ctx.step(&format!(
        "provisioned over HTTPS on the web pair's {}: domain {domain}, customer {cid}, subscribers {}, {}",
        p.web_vip, ALICE.0, BOB.0
    ));
    Ok(())
}

/// A UDP socket in the run's namespace that sends OPTIONS for the served
/// domain (answered by a proxy, not the lb) and waits for the answer.
struct Prober {
    sock: UdpSocket,
    local: SocketAddr,
    domain: String,
    seq: u32,
}

/// What an OPTIONS got.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    status: u16,
    from: SocketAddr,
}

impl Prober {
    fn new(ns: &Netns, ua: IpAddr, domain: &str) -> Result<Prober, Step> {
        let sock = ns
            .within(move || UdpSocket::bind(SocketAddr::new(ua, 0)))
            .and_then(|r| r)
            .map_err(|e| Step::Fail(format!("probe socket on {ua}: {e}")))?;
        let local = sock.local_addr()?;
        Ok(Prober {
            sock,
            local,
            domain: domain.to_owned(),
            seq: 0,
        })
    }

    /// One OPTIONS to `to`; the final answer within `wait`, if any.
    fn probe(&mut self, to: SocketAddr, wait: Duration) -> Option<Answer> {
        self.request(to, "OPTIONS", "probe", "", wait)
            .map(|(a, _)| a)
    }

    /// The digest algorithms a REGISTER for `user` is challenged with, in
    /// the order of the challenge headers (`None`: no 401 within `wait`).
    fn challenge(&mut self, to: SocketAddr, user: &str, wait: Duration) -> Option<Vec<String>> {
        let contact = format!("Contact: <sip:{user}@{}>\r\n", self.local);
        let (a, text) = self.request(to, "REGISTER", user, &contact, wait)?;
        (a.status == 401).then(|| {
            text.lines()
                .filter(|l| l.to_ascii_lowercase().starts_with("www-authenticate:"))
                .map(|l| {
                    l.split("algorithm=")
                        .nth(1)
                        .map_or("MD5", |r| r.split([',', ' ', '\r']).next().unwrap_or(""))
                        .to_owned()
                })
                .collect()
        })
    }

    /// `method` (OPTIONS or REGISTER) for `user` of the domain to `to`;
    /// the final answer and its text within `wait`, if any.
    fn request(
        &mut self,
        to: SocketAddr,
        method: &str,
        user: &str,
        extra: &str,
        wait: Duration,
    ) -> Option<(Answer, String)> {
        self.seq += 1;
        let call_id = format!("fvq-probe-{}-{}", std::process::id(), self.seq);
        let (ruri, to_uri) = if method == "REGISTER" {
            (
                format!("sip:{}", self.domain),
                format!("sip:{user}@{}", self.domain),
            )
        } else {
            (
                format!("sip:{}", self.domain),
                format!("sip:{}", self.domain),
            )
        };
        let msg = format!(
            "{method} {ruri} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {l};branch=z9hG4bK{c};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:{user}@{d}>;tag=fvq{s}\r\n\
             To: <{to_uri}>\r\n\
             Call-ID: {c}\r\n\
             CSeq: 1 {method}\r\n\
             {extra}\
             Content-Length: 0\r\n\r\n",
            d = self.domain,
            l = self.local,
            c = call_id,
            s = self.seq
        );
        self.sock.send_to(msg.as_bytes(), to).ok()?;
        let deadline = Instant::now() + wait;
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            self.sock
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .ok()?;
            let Ok((n, from)) = self.sock.recv_from(&mut buf) else {
                return None;
            };
            let text = String::from_utf8_lossy(&buf[..n]);
            if !text.contains(&call_id) {
                continue;
            }
            let status = text
                .strip_prefix("SIP/2.0 ")
                .and_then(|r| r.get(..3))
                .and_then(|c| c.parse::<u16>().ok());
            match status {
                Some(s) if s >= 200 => {
                    return Some((Answer { status: s, from }, text.into_owned()));
                }
                _ => continue,
            }
        }
    }

    /// OPTIONS to `to` every 250 ms until one gets 200; when, and from where.
    fn until_ok(&mut self, to: SocketAddr, within: Duration) -> (Option<Duration>, Vec<Answer>) {
        let t0 = Instant::now();
        let mut seen = Vec::new();
        while t0.elapsed() < within {
            match self.probe(to, Duration::from_millis(250)) {
                Some(a) if a.status == 200 => return (Some(t0.elapsed()), seen),
                Some(a) => {
                    if !seen.contains(&a) {
                        seen.push(a);
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
                None => {}
            }
        }
        (None, seen)
    }

    /// OPTIONS to each of `to` in turn until one gets 200: which one and
    /// when, or what they answered.
    fn until_any_ok(
        &mut self,
        to: &[SocketAddr],
        within: Duration,
    ) -> Result<(SocketAddr, Duration), Vec<Answer>> {
        let t0 = Instant::now();
        let mut seen = Vec::new();
        while t0.elapsed() < within {
            for a in to {
                match self.probe(*a, Duration::from_millis(250)) {
                    Some(r) if r.status == 200 => return Ok((*a, t0.elapsed())),
                    Some(r) if !seen.contains(&r) => seen.push(r),
                    _ => {}
                }
            }
        }
        Err(seen)
    }

    /// Ask the phone at `to` to go on with its scenario: an INFO in its
    /// call `call_id` (the phone waits for it after the call is set up).
    fn nudge(&mut self, to: SocketAddr, call_id: &str) -> Result<(), Step> {
        let msg = format!(
            "INFO sip:{to} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {l};branch=z9hG4bKfvqnudge{s}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:harness@{d}>;tag=fvqnudge\r\n\
             To: <sip:{to}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 INFO\r\n\
             Content-Length: 0\r\n\r\n",
            l = self.local,
            s = self.seq,
            d = self.domain,
        );
        self.sock.send_to(msg.as_bytes(), to)?;
        Ok(())
    }
}

/// One sipp phone run: a scenario file, a local port, a log of every
/// message it sent and received.
struct Phone {
    name: String,
    daemon: Daemon,
    messages: PathBuf,
    errors: PathBuf,
}

impl Phone {
    #[allow(clippy::too_many_arguments)]
    fn start(
        ns: &Netns,
        dir: &Path,
        name: &str,
        xml: &str,
        local: SocketAddr,
        remote: SocketAddr,
        auth: Option<(&str, &str)>,
        keys: &[(&str, &str)],
    ) -> Result<Phone, Step> {
        let file = dir.join(format!("{name}.xml"));
        std::fs::write(&file, xml).map_err(|e| Step::Fail(format!("{}: {e}", file.display())))?;
        let messages = dir.join(format!("{name}.messages.log"));
        let errors = dir.join(format!("{name}.errors.log"));
        let mut c = ns.command("sipp");
        c.arg(remote.to_string())
            .arg("-sf")
            .arg(&file)
            .args(["-i", &local.ip().to_string()])
            .args(["-p", &local.port().to_string()])
            .args(["-m", "1", "-nostdin", "-nd", "-trace_msg", "-trace_err"])
            .arg("-message_file")
            .arg(&messages)
            .arg("-error_file")
            .arg(&errors)
            .args(["-timeout", &format!("{}s", PHONE_TIMEOUT.as_secs())])
            .arg("-timeout_error")
            .current_dir(dir);
        if let Some((user, pw)) = auth {
            c.args(["-au", user, "-ap", pw]);
        }
        for (k, v) in keys {
            // The harness names the caller's Call-ID (it nudges the call
            // with an INFO): sipp matches messages to its calls by the
            // Call-ID it generates, so it is set with -cid_str.
            if *k == "cid" {
                c.args(["-cid_str", v]);
            } else {
                c.args(["-key", k, v]);
            }
        }
        let daemon = Daemon::spawn(name, c, &dir.join(format!("{name}.screen.log")))?;
        Ok(Phone {
            name: name.to_owned(),
            daemon,
            messages,
            errors,
        })
    }

    /// Every message this phone received, in order.
    fn received(&self) -> Vec<String> {
        let text = std::fs::read_to_string(&self.messages).unwrap_or_default();
        log_messages(&text)
            .into_iter()
            .filter_map(|(received, m)| received.then_some(m))
            .collect()
    }

    /// Whether the phone sent a request starting with `method ` so far.
    fn sent(&self, method: &str) -> bool {
        let text = std::fs::read_to_string(&self.messages).unwrap_or_default();
        log_messages(&text)
            .iter()
            .any(|(received, m)| !received && m.starts_with(&format!("{method} ")))
    }

    /// Status lines of the responses received (e.g. `SIP/2.0 480 ...`).
    fn statuses(&self) -> Vec<String> {
        self.received()
            .iter()
            .filter(|m| m.starts_with("SIP/2.0 "))
            .filter_map(|m| {
                let line = m.lines().next()?.trim();
                let cseq = m
                    .lines()
                    .find(|l| l.to_ascii_lowercase().starts_with("cseq:"))
                    .map(|l| l[5..].trim().to_owned())
                    .unwrap_or_default();
                Some(format!("{line} ({cseq})"))
            })
            .collect()
    }

    /// Wait for the phone to finish; Ok when sipp reports its call
    /// successful, else what it received and its errors.
    fn finish(mut self, within: Duration) -> Result<(), String> {
        let status = self.daemon.wait_exit(within);
        let why = match status {
            Some(s) if s.success() => return Ok(()),
            Some(s) => format!("sipp exited {s}"),
            None => format!("not done after {}s", within.as_secs()),
        };
        let errors = std::fs::read_to_string(&self.errors).unwrap_or_default();
        let errors: Vec<&str> = errors
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(6)
            .collect();
        Err(format!(
            "{} {why}; received: [{}]; sipp errors: [{}]",
            self.name,
            self.statuses().join(", "),
            errors.join(" | ")
        ))
    }
}

/// The messages of a sipp `-trace_msg` log, in order: (received, text).
/// Each entry is a line of dashes with the time, a line `UDP message
/// received [N] bytes :` or `UDP message sent (N bytes):`, a blank line and
/// the message.
fn log_messages(text: &str) -> Vec<(bool, String)> {
    text.split("-----------------------------------------------")
        .filter_map(|block| {
            let mut it = block.splitn(3, '\n');
            let _time = it.next()?;
            let kind = it.next()?;
            let body = it.next()?.trim_start().to_owned();
            if kind.contains("message received") {
                Some((true, body))
            } else if kind.contains("message sent") {
                Some((false, body))
            } else {
                None
            }
        })
        .collect()
}

/// REGISTER with digest authentication; the Contact is the phone itself.
const REGISTER_XML: &str = r#"<?xml version="1.0" encoding="UTF-8" ?>
<!-- qemu-tests sip-call-failover: REGISTER through the lb pair, digest challenge answered. -->
<scenario name="register">
  <send retrans="500">
    <![CDATA[
REGISTER sip:[domain] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:[user]@[domain]>;tag=[pid]reg[call_number]
To: <sip:[user]@[domain]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:[user]@[local_ip]:[local_port]>
Expires: 3600
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[
REGISTER sip:[domain] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:[user]@[domain]>;tag=[pid]reg[call_number]
To: <sip:[user]@[domain]>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:[user]@[local_ip]:[local_port]>
[authentication]
Expires: 3600
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="200"/>
</scenario>
"#;

/// The caller: INVITE (407 answered), 200, ACK; with `[hold]` = yes it
/// then waits for the harness's INFO and sends a re-INVITE in the dialog;
/// BYE at the end. Everything in the dialog follows the recorded route.
fn caller_xml(hold: bool) -> String {
    let hold_part = if hold {
        r#"
  <recv request="INFO" timeout="600000"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]nudge
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
INVITE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:[user]@[domain]>;tag=[pid]call[call_number]
To: <sip:[callee]@[domain]>[peer_tag_param]
[routes]
Call-ID: [call_id]
CSeq: 3 INVITE
Contact: <sip:[user]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=[user] 1 2 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=sendonly

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="200"/>
  <send>
    <![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:[user]@[domain]>;tag=[pid]call[call_number]
To: <sip:[callee]@[domain]>[peer_tag_param]
[routes]
Call-ID: [call_id]
CSeq: 3 ACK
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
"#
    } else {
        ""
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" ?>
<!-- qemu-tests sip-call-failover: the caller, through the lb pair. -->
<scenario name="caller">
  <send retrans="500">
    <![CDATA[
INVITE sip:[callee]@[domain] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:[user]@[domain]>;tag=[pid]call[call_number]
To: <sip:[callee]@[domain]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:[user]@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=[user] 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="407" auth="true"/>
  <!-- RFC 3261 17.1.1.3: the ACK of a non-2xx has the INVITE's branch (message 0). -->
  <send>
    <![CDATA[
ACK sip:[callee]@[domain] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch-3];rport
From: <sip:[user]@[domain]>;tag=[pid]call[call_number]
To: <sip:[callee]@[domain]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
INVITE sip:[callee]@[domain] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:[user]@[domain]>;tag=[pid]call[call_number]
To: <sip:[callee]@[domain]>
Call-ID: [call_id]
CSeq: 2 INVITE
Contact: <sip:[user]@[local_ip]:[local_port]>
[authentication]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=[user] 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rrs="true"/>
  <send>
    <![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:[user]@[domain]>;tag=[pid]call[call_number]
To: <sip:[callee]@[domain]>[peer_tag_param]
[routes]
Call-ID: [call_id]
CSeq: 2 ACK
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
{hold_part}
  <send retrans="500">
    <![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:[user]@[domain]>;tag=[pid]call[call_number]
To: <sip:[callee]@[domain]>[peer_tag_param]
[routes]
Call-ID: [call_id]
CSeq: 4 BYE
Max-Forwards: 70
Content-Length: 0

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="200"/>
</scenario>
"#
    )
}

/// The callee: answers one INVITE, takes the ACK, answers a re-INVITE
/// when `reinvite`, and the BYE.
fn callee_xml(reinvite: bool) -> String {
    let re = if reinvite {
        r#"
  <recv request="INVITE"/>
  <send retrans="500">
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:[user]@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=[user] 1 2 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=recvonly

    ]]>
  </send>
  <recv request="ACK"/>
"#
    } else {
        ""
    };
    format!(
        r#"<?xml version="1.0" encoding="UTF-8" ?>
<!-- qemu-tests sip-call-failover: the callee. -->
<scenario name="callee">
  <recv request="INVITE"/>
  <send>
    <![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]answer[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Record-Route:]
Contact: <sip:[user]@[local_ip]:[local_port]>
Content-Length: 0

    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]answer[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Record-Route:]
Contact: <sip:[user]@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=[user] 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000

    ]]>
  </send>
  <recv request="ACK"/>
{re}
  <recv request="BYE"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>
  <timewait milliseconds="1000"/>
</scenario>
"#
    )
}

/// The running pieces of the SIP flow.
struct Sip {
    ns: Arc<Netns>,
    dir: PathBuf,
    domain: String,
    /// Where the phones send: the lb pair's shared address (or, when the
    /// lbs do not serve it, the master lb's own address).
    entry: SocketAddr,
    /// The phones' address.
    ua: IpAddr,
}

impl Sip {
    fn local(&self, port: u16) -> SocketAddr {
        SocketAddr::new(self.ua, port)
    }

    fn phone(
        &self,
        name: &str,
        xml: &str,
        who: (&str, &str, u16),
        keys: &[(&str, &str)],
    ) -> Result<Phone, Step> {
        let mut all: Vec<(&str, &str)> = vec![("domain", &self.domain), ("user", who.0)];
        all.extend_from_slice(keys);
        Phone::start(
            &self.ns,
            &self.dir,
            name,
            xml,
            self.local(who.2),
            self.entry,
            Some((who.0, who.1)),
            &all,
        )
    }

    /// Register `who` through the lb pair; Err with what sipp saw.
    fn register(&self, name: &str, who: (&str, &str, u16)) -> Result<(), String> {
        self.phone(name, REGISTER_XML, who, &[])
            .map_err(|e| format!("{e:?}"))?
            .finish(PHONE_TIMEOUT)
    }
}

/// Where the scenario stands after the power cut of the active proxy.
struct Failover {
    /// The node that was cut.
    cut: String,
    /// The standby that holds the proxy pair's address now.
    standby: String,
}

/// Power off the active proxy (QMP quit); measure until its standby
/// advertises the pair's VRID, and until OPTIONS through the lb at `entry`
/// is answered 200 again (a proxy serves the pair's address).
fn cut_active_proxy(
    ctx: &mut Ctx,
    p: &Path7,
    master: &str,
    probe: &mut Prober,
    entry: SocketAddr,
) -> Result<Failover, Step> {
    let (standby, priority, adv_cs) = ctx
        .chassis()?
        .nodes
        .iter()
        .find(|n| n.config.pair.name == p.proxy_pair && n.name() != master)
        .map(|n| {
            (
                n.name().to_owned(),
                n.config.vips.first().map_or(100, |v| v.priority),
                n.config.vips.first().map_or(100, |v| v.advert_interval_cs),
            )
        })
        .ok_or_else(|| Step::Fail(format!("{master} has no standby in the chassis")))?;
    ctx.step(&format!(
        "{master} holds {} (VRID {}); cutting its power by QMP quit",
        p.proxy_vip, p.proxy_vrid
    ));
    let t0 = Instant::now();
    ctx.chassis()?.node_by_name(master)?.power_cut()?;
    let bound = takeover_bound(adv_cs, priority);
    let ch = ctx.chassis()?;
    let took = crate::proc::poll(bound * 3, || {
        ch.fabrics
            .advertisers(p.proxy_vrid, t0)
            .contains(&standby)
            .then(|| t0.elapsed())
    })
    .ok_or_else(|| {
        Step::Fail(format!(
            "{standby} did not advertise VRID {} within {:.1}s after {master} lost power",
            p.proxy_vrid,
            (bound * 3).as_secs_f64()
        ))
    })?;
    ctx.figure("proxy VRRP takeover (QMP quit)", took.as_secs_f64(), "s");
    ctx.step(&format!(
        "{standby} advertises {} {:.1}s after the power cut (bound {:.1}s)",
        p.proxy_vip,
        took.as_secs_f64(),
        bound.as_secs_f64()
    ));
    let (back, seen) = probe.until_ok(entry, SETTLE);
    if back.is_none() {
        return Err(Step::Fail(format!(
            "after {master} lost power, OPTIONS via {entry} got no 200 within {}s (answers: {seen:?}): {standby} does not serve SIP on {}",
            SETTLE.as_secs(),
            p.proxy_vip
        )));
    }
    let path_s = t0.elapsed().as_secs_f64();
    ctx.figure(
        "SIP path failover (power cut to OPTIONS 200 via the lb)",
        path_s,
        "s",
    );
    ctx.step(&format!(
        "SIP path back: OPTIONS via the lb at {entry} answered 200 by {standby} {path_s:.1}s after the power cut"
    ));
    Ok(Failover {
        cut: master.to_owned(),
        standby,
    })
}

/// The scenario body (registered in [`crate::scenario::SCENARIOS`]).
pub fn sip_call_failover(ctx: &mut Ctx) -> Result<Outcome, Step> {
    crate::proc::require("sipp", "sip-tester")?;
    ctx.bring_up()?;
    ctx.boot_all()?;
    let masters = ctx.masters()?;
    ctx.step(&format!("one master per VRID: {masters:?}"));
    let p = topology(ctx)?;
    let master_of = |vrid: u8| {
        masters
            .iter()
            .find(|(v, _)| *v == vrid)
            .map(|(_, m)| m.clone())
            .ok_or_else(|| Step::Fail(format!("VRID {vrid} has no master")))
    };
    let proxy_master = master_of(p.proxy_vrid)?;
    let lb_master = master_of(p.lb_vrid)?;
    let dir = ctx.run_dir.join("sip");
    std::fs::create_dir_all(&dir).map_err(|e| Step::Fail(format!("{}: {e}", dir.display())))?;
    let domain = secret(ctx, "sip.domains")?
        .split(',')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    provision(ctx, &p, &dir, &domain)?;
    let ns = Arc::clone(&ctx.chassis()?.netns);
    let mut probe = Prober::new(&ns, p.ua, &domain)?;
    // What the services cannot do yet; the scenario goes as far as it can.
    let mut gaps: Vec<String> = Vec::new();

    // The SIP path up to a proxy: OPTIONS for the domain (a proxy answers,
    // not the lb), first through the master lb's own address, then through
    // the pair's shared address the customers use.
    let master_front = p
        .lb_fronts
        .iter()
        .find(|(n, _)| *n == lb_master)
        .map(|(_, a)| *a)
        .ok_or_else(|| Step::Fail(format!("{lb_master} has no external address")))?;
    let (first, up) = probe
        .until_any_ok(&[p.lb_vip, master_front], SETTLE)
        .map_err(|seen| {
            Step::Fail(format!(
                "OPTIONS sip:{domain} through the lb pair's {} or {lb_master}'s own {master_front}: no 200 within {}s (answers: {seen:?})",
                p.lb_vip,
                SETTLE.as_secs()
            ))
        })?;
    ctx.step(&format!(
        "OPTIONS sip:{domain} through {first} answered 200 by a proxy after {:.1}s",
        up.as_secs_f64()
    ));
    let vip_up = if first == p.lb_vip {
        true
    } else {
        probe
            .until_ok(p.lb_vip, Duration::from_secs(15))
            .0
            .is_some()
    };
    let entry = if vip_up {
        ctx.step(&format!(
            "the lb pair's shared address {} serves SIP (OPTIONS 200)",
            p.lb_vip
        ));
        p.lb_vip
    } else {
        gaps.push(format!(
            "the lb pair's shared address {} does not serve SIP (ICMP port unreachable; {lb_master}'s own {master_front} does): the image's sip-lb.toml sets listen.udp to the node's external address instead of the pair's shared one (image/src/services.rs)",
            p.lb_vip
        ));
        ctx.step(&format!(
            "GAP: OPTIONS to the lb pair's shared address {} unanswered for 15 s more while {lb_master}'s own address answers; going on through {master_front} to check the rest of the path",
            p.lb_vip
        ));
        master_front
    };

    // Can sipp answer the digest challenge? sipp 3.6 takes the first
    // challenge and knows MD5 only.
    let algorithms = probe
        .challenge(entry, ALICE.0, Duration::from_secs(5))
        .ok_or_else(|| {
            Step::Fail(format!(
                "REGISTER for {} through {entry} got no 401 challenge",
                ALICE.0
            ))
        })?;
    ctx.step(&format!(
        "REGISTER challenged (401) with digest algorithms {algorithms:?}, in that order"
    ));
    if algorithms.first().map(String::as_str) != Some("MD5") {
        gaps.push(format!(
            "the proxies challenge with {algorithms:?} (the image's sip-proxy.toml keeps the default order, RFC 8760), and sipp (sip-tester 3.6) answers only the first challenge and only with MD5 (\"createAuthHeader: authentication must use MD5 or AKAv1-MD5\"): no sipp phone can register or call; the image must list MD5 first (algorithms = [\"MD5\", \"SHA-256\"]) for these phones"
        ));
        ctx.step("GAP: sipp cannot answer this challenge: no registration, no call; measuring the SIP path across the proxy failover with OPTIONS only");
        let f = cut_active_proxy(ctx, &p, &proxy_master, &mut probe, entry)?;
        let again = probe.challenge(entry, BOB.0, Duration::from_secs(5));
        ctx.step(&format!(
            "after the failover {} challenges a new REGISTER again: {again:?} (cut {})",
            f.standby, f.cut
        ));
        return Err(Step::Blocked(gaps.join("; ")));
    }

    let sip = Sip {
        ns: Arc::clone(&ns),
        dir,
        domain: domain.clone(),
        entry,
        ua: p.ua,
    };
    call_flow(ctx, &p, &sip, &proxy_master, &mut probe, &mut gaps)?;
    if gaps.is_empty() {
        Ok(Outcome::Pass)
    } else {
        Err(Step::Blocked(gaps.join("; ")))
    }
}

/// Both phones register, call 1 is set up, the active proxy is cut, call
/// 1's re-INVITE and BYE go through the standby, and a new call between
/// the subscribers registered before the failover is placed.
fn call_flow(
    ctx: &mut Ctx,
    p: &Path7,
    sip: &Sip,
    proxy_master: &str,
    probe: &mut Prober,
    gaps: &mut Vec<String>,
) -> Result<(), Step> {
    // The proxies read the subscribers from their local replica of the
    // db: retried while replication catches up.
    for who in [BOB, ALICE] {
        let t0 = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match sip.register(&format!("{}-register-{attempt}", who.0), who) {
                Ok(()) => break,
                Err(e) if t0.elapsed() < SETTLE => {
                    if attempt == 1 {
                        ctx.step(&format!(
                            "{} REGISTER not accepted yet, retrying: {e}",
                            who.0
                        ));
                    }
                    std::thread::sleep(Duration::from_secs(3));
                }
                Err(e) => {
                    return Err(Step::Fail(format!(
                        "{} could not register through {} within {}s: {e}",
                        who.0,
                        sip.entry,
                        SETTLE.as_secs()
                    )))
                }
            }
        }
        ctx.step(&format!(
            "{}@{} registered through the lb at {} (digest auth) after {:.1}s",
            who.0,
            sip.domain,
            sip.entry,
            t0.elapsed().as_secs_f64()
        ));
    }

    // Call 1: alice -> bob, held up across the failover.
    let cid1 = format!("fvq-call1-{}", std::process::id());
    let bob1 = sip.phone("bob-call1", &callee_xml(true), BOB, &[])?;
    let alice1 = sip.phone(
        "alice-call1",
        &caller_xml(true),
        ALICE,
        &[("callee", BOB.0), ("cid", &cid1)],
    )?;
    let answered = |m: &String| m.starts_with("SIP/2.0 200") && m.contains("INVITE");
    let established = crate::proc::poll(Duration::from_secs(60), || {
        (alice1.sent("ACK") && alice1.received().iter().any(answered)).then_some(())
    });
    if established.is_none() {
        let a = alice1
            .finish(Duration::from_secs(1))
            .err()
            .unwrap_or_default();
        let b = bob1
            .finish(Duration::from_secs(1))
            .err()
            .unwrap_or_default();
        return Err(Step::Fail(format!(
            "call 1 ({cid1}) not established within 60 s: {a}; {b}"
        )));
    }
    let answer = alice1
        .received()
        .into_iter()
        .find(answered)
        .unwrap_or_default();
    let media_to = answer
        .lines()
        .find(|l| l.starts_with("c=IN IP4 "))
        .map(|l| l["c=IN IP4 ".len()..].trim().to_owned())
        .unwrap_or_default();
    let rr: Vec<&str> = answer
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("record-route:"))
        .collect();
    ctx.step(&format!(
        "call 1 {} -> {} established through the lb and {proxy_master} ({})",
        ALICE.0,
        BOB.0,
        rr.join(" ")
    ));
    ctx.step(&format!(
        "media: the answer's SDP sends RTP to {media_to} directly: the image's sip-proxy engages no media relay, so media never crossed the proxy; media continuity is not asserted here (media-relay's sessions are in the pair's Redis, which the standby replicates)"
    ));

    let f = cut_active_proxy(ctx, p, proxy_master, probe, sip.entry)?;

    // In-dialog: re-INVITE and BYE of call 1 through the standby.
    let t_dialog = Instant::now();
    probe.nudge(sip.local(ALICE.2), &cid1)?;
    let a = alice1.finish(PHONE_TIMEOUT);
    let b = bob1.finish(Duration::from_secs(30));
    if let Err(e) = a.and(b) {
        return Err(Step::Fail(format!(
            "call 1's in-dialog requests after {} lost power did not complete: {e}",
            f.cut
        )));
    }
    ctx.figure(
        "call 1 re-INVITE + BYE after the failover",
        t_dialog.elapsed().as_secs_f64(),
        "s",
    );
    ctx.step(&format!(
        "call 1 survived: its re-INVITE (200, ACK) and BYE (200) went through the lb and {} ({:.1}s)",
        f.standby,
        t_dialog.elapsed().as_secs_f64()
    ));

    // Call 2: a new call between the subscribers registered before.
    let call = |n: u32| -> Result<Result<(), String>, Step> {
        let cid = format!("fvq-call{n}-{}", std::process::id());
        let bob = sip.phone(&format!("bob-call{n}"), &callee_xml(false), BOB, &[])?;
        let alice = sip.phone(
            &format!("alice-call{n}"),
            &caller_xml(false),
            ALICE,
            &[("callee", BOB.0), ("cid", &cid)],
        )?;
        Ok(match alice.finish(PHONE_TIMEOUT) {
            Ok(()) => bob.finish(Duration::from_secs(30)),
            Err(e) => Err(e),
        })
    };
    let lost = match call(2)? {
        Ok(()) => {
            ctx.step(&format!(
                "call 2 {} -> {} (both registered before the failover) completed through {}",
                ALICE.0, BOB.0, f.standby
            ));
            return Ok(());
        }
        Err(e) => e,
    };
    ctx.step(&format!(
        "GAP: call 2 to {} (registered before the failover) failed through {}: {lost}",
        BOB.0, f.standby
    ));
    sip.register("bob-register-after", BOB)
        .map_err(|e| Step::Fail(format!("{} REGISTER after the failover: {e}", BOB.0)))?;
    call(3)?.map_err(|e| {
        Step::Fail(format!(
            "call 3 after {} registered again through {}: {e}",
            BOB.0, f.standby
        ))
    })?;
    ctx.step(&format!(
        "after {} registered again through {}, call 3 {} -> {} completed: new registrations and calls work",
        BOB.0, f.standby, ALICE.0, BOB.0
    ));
    gaps.push(format!(
        "registrations made on {} are unknown to {}: a new call to {} failed until it registered again ({lost}); the pair's Redis (redis-demote makes the standby a replica) did not carry them (db pair's shared Redis at {}:6379)",
        f.cut, f.standby, BOB.0, p.db_vip
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spare_address_is_the_highest_free_host() {
        let a: IpAddr = "10.20.1.103".parse().unwrap();
        let taken: Vec<IpAddr> = vec!["10.20.3.254".parse().unwrap()];
        assert_eq!(
            spare_address(a, 22, &taken),
            Some("10.20.3.253".parse().unwrap())
        );
        assert_eq!(spare_address(a, 31, &taken), None);
        assert_eq!(spare_address("::1".parse().unwrap(), 64, &taken), None);
    }

    #[test]
    fn sipp_message_logs_are_read_in_order() {
        let log = "----------------------------------------------- 2026-11-25 20:39:13.503950\n\
UDP message sent (451 bytes):\n\nINVITE sip:bob@example.com SIP/2.0\nCSeq: 1 INVITE\n\n\
----------------------------------------------- 2026-11-25 20:39:13.6\n\
UDP message received [300] bytes :\n\nSIP/2.0 200 OK\nCSeq: 2 INVITE\n\n";
        let m = log_messages(log);
        assert_eq!(m.len(), 2);
        assert!(!m[0].0 && m[0].1.starts_with("INVITE sip:bob"));
        assert!(m[1].0 && m[1].1.starts_with("SIP/2.0 200 OK"));
        assert!(log_messages("").is_empty());
    }

    #[test]
    fn scenario_texts_are_complete_xml() {
        for x in [
            caller_xml(true),
            caller_xml(false),
            callee_xml(true),
            callee_xml(false),
        ] {
            assert!(x.trim_end().ends_with("</scenario>"), "{x}");
            assert_eq!(x.matches("<![CDATA[").count(), x.matches("]]>").count());
        }
        assert!(caller_xml(true).contains("CSeq: 3 INVITE"));
        assert!(!caller_xml(false).contains("CSeq: 3 INVITE"));
        assert!(REGISTER_XML.contains("[authentication]"));
    }
}
