//! Service definitions: the TOML schema of `services.d/*.toml`, parsed once
//! into [`ServiceSpec`], a value that cannot hold an invalid definition.
//!
//! The schema is documented in `docs/supervisor.md`. Every error names the
//! file, line, column and field. This module reads files; it never starts
//! anything.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use toml::Spanned;

/// One located problem in a service file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {}{message}", file.display(), field.as_ref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
pub struct SpecError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub field: Option<String>,
    pub message: String,
}

/// Why a services directory could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read services directory {}: {source}", dir.display())]
    Dir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read {}: {source}", file.display())]
    File {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<SpecError>),
}

/// Long-running daemon or run-to-completion task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    #[default]
    Longrun,
    Oneshot,
}

/// When a process that ended is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    Always,
    OnFailure,
    Never,
}

/// Restart timing and the crash-loop limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestartSpec {
    pub policy: RestartPolicy,
    /// Delay before the second restart; doubles up to `max_backoff_ms`.
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    /// This many failures within `window_s` mark the service `failed`.
    pub limit: u32,
    pub window_s: u64,
}

impl Default for RestartSpec {
    fn default() -> Self {
        Self {
            policy: RestartPolicy::Always,
            initial_backoff_ms: 100,
            max_backoff_ms: 30_000,
            limit: 5,
            window_s: 60,
        }
    }
}

/// How the supervisor learns that a started service is ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Readiness {
    /// Ready as soon as it runs (longrun) or exited 0 (oneshot).
    None,
    /// s6 style: the service writes a newline to this descriptor.
    NotifyFd { fd: i32 },
    /// systemd style: `READY=1` on the datagram socket in `NOTIFY_SOCKET`.
    SdNotify,
    /// Ready once a TCP connect to this address succeeds.
    Tcp {
        address: SocketAddr,
        interval_ms: u64,
    },
    /// Ready once this command exits 0.
    Command {
        command: Vec<String>,
        interval_ms: u64,
    },
}

/// A periodic health check of a ready service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProbeSpec {
    pub check: ProbeCheck,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// Consecutive successes that make an unhealthy service healthy.
    pub rise: u32,
    /// Consecutive failures that make a healthy service unhealthy.
    pub fall: u32,
    /// Restart the service when it turns unhealthy.
    pub restart: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ProbeCheck {
    Command { command: Vec<String> },
    Tcp { address: SocketAddr },
    Http { address: SocketAddr, path: String },
}

/// Where and how much output is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSpec {
    /// Size at which the log file is rotated.
    pub max_bytes: u64,
    /// Rotated files kept besides the current one.
    pub files: u32,
    /// Lines kept in memory for `flexctl logs`.
    pub tail_lines: usize,
}

impl Default for LogSpec {
    fn default() -> Self {
        Self {
            max_bytes: 1 << 20,
            files: 3,
            tail_lines: 200,
        }
    }
}

/// A resource limit (soft = hard).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rlimit {
    pub resource: RlimitKind,
    /// `None` is unlimited.
    pub value: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RlimitKind {
    Nofile,
    Nproc,
    Core,
    Memlock,
    Stack,
    As,
    Fsize,
    Cpu,
    Data,
}

impl RlimitKind {
    const ALL: [(&'static str, RlimitKind); 9] = [
        ("nofile", RlimitKind::Nofile),
        ("nproc", RlimitKind::Nproc),
        ("core", RlimitKind::Core),
        ("memlock", RlimitKind::Memlock),
        ("stack", RlimitKind::Stack),
        ("as", RlimitKind::As),
        ("fsize", RlimitKind::Fsize),
        ("cpu", RlimitKind::Cpu),
        ("data", RlimitKind::Data),
    ];
}

/// A validated service definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceSpec {
    pub name: String,
    /// The file it came from (for messages).
    pub file: PathBuf,
    pub command: String,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub user: Option<String>,
    pub group: Option<String>,
    pub cwd: Option<PathBuf>,
    pub rlimits: Vec<Rlimit>,
    pub kind: Kind,
    /// Wanted from boot on every node, whatever the node configuration's
    /// service lists say (acpid, console reports, `mdadm --monitor`).
    pub boot: bool,
    pub requires: Vec<String>,
    pub wants: Vec<String>,
    #[serde(serialize_with = "ser_signal")]
    pub stop_signal: Signal,
    pub stop_timeout_ms: u64,
    pub start_timeout_ms: u64,
    /// sd_notify services: `WATCHDOG=1` must come at least this often
    /// while ready, or the service is restarted (`WATCHDOG_USEC` is set).
    pub watchdog_ms: Option<u64>,
    pub restart: RestartSpec,
    pub readiness: Readiness,
    pub probes: Vec<ProbeSpec>,
    pub log: LogSpec,
}

fn ser_signal<S: serde::Serializer>(s: &Signal, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.as_str())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    command: Spanned<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    user: Option<String>,
    group: Option<String>,
    cwd: Option<PathBuf>,
    #[serde(default)]
    rlimits: BTreeMap<String, Spanned<RawLimit>>,
    #[serde(default, rename = "type")]
    kind: Kind,
    #[serde(default)]
    boot: bool,
    #[serde(default)]
    requires: Vec<Spanned<String>>,
    #[serde(default)]
    wants: Vec<Spanned<String>>,
    stop_signal: Option<Spanned<String>>,
    stop_timeout_ms: Option<u64>,
    start_timeout_ms: Option<u64>,
    watchdog_ms: Option<u64>,
    #[serde(default)]
    restart: RestartSpec,
    readiness: Option<Spanned<RawCheck>>,
    #[serde(default)]
    probe: Vec<Spanned<RawCheck>>,
    #[serde(default)]
    log: LogSpec,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawLimit {
    Number(u64),
    Word(String),
}

/// The fields of a `[readiness]` or `[[probe]]` table, checked per kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    kind: String,
    fd: Option<i32>,
    address: Option<String>,
    path: Option<String>,
    command: Option<Vec<String>>,
    interval_ms: Option<u64>,
    timeout_ms: Option<u64>,
    rise: Option<u32>,
    fall: Option<u32>,
    restart: Option<bool>,
}

/// Byte offset to 1-based line and column.
pub fn locate(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(offset, |nl| offset - nl - 1) + 1;
    (line, column)
}

struct Ctx<'a> {
    file: &'a Path,
    text: &'a str,
    errors: Vec<SpecError>,
}

impl Ctx<'_> {
    fn err(&mut self, offset: usize, field: &str, message: impl fmt::Display) {
        let (line, column) = locate(self.text, offset);
        self.errors.push(SpecError {
            file: self.file.to_owned(),
            line,
            column,
            field: Some(field.to_owned()),
            message: message.to_string(),
        });
    }
}

/// Whether `name` is usable as a service name (file stem, cgroup name).
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

/// Parse one service definition; `name` is the file stem.
pub fn parse(name: &str, file: &Path, text: &str) -> Result<ServiceSpec, Vec<SpecError>> {
    let mut cx = Ctx {
        file,
        text,
        errors: Vec::new(),
    };
    if !valid_name(name) {
        cx.err(
            0,
            "name",
            format!("`{name}` is not a valid service name (letters, digits, - _ . @; at most 64)"),
        );
        return Err(cx.errors);
    }
    let raw: RawService = match toml::from_str(text) {
        Ok(r) => r,
        Err(e) => {
            let (line, column) = e.span().map_or((1, 1), |s| locate(text, s.start));
            return Err(vec![SpecError {
                file: file.to_owned(),
                line,
                column,
                field: None,
                message: e.message().to_owned(),
            }]);
        }
    };

    let command_span = raw.command.span();
    let command = raw.command.into_inner();
    if command.is_empty() {
        cx.err(command_span.start, "command", "must not be empty");
    } else if !command.starts_with('/') {
        cx.err(
            command_span.start,
            "command",
            format!("`{command}` must be an absolute path (no PATH lookup in PID 1)"),
        );
    }

    let mut rlimits = Vec::new();
    for (key, value) in raw.rlimits {
        let span = value.span();
        let Some(kind) = RlimitKind::ALL
            .iter()
            .find(|(n, _)| *n == key)
            .map(|(_, k)| *k)
        else {
            let known: Vec<&str> = RlimitKind::ALL.iter().map(|(n, _)| *n).collect();
            cx.err(
                span.start,
                &format!("rlimits.{key}"),
                format!("unknown limit; known: {}", known.join(", ")),
            );
            continue;
        };
        match value.into_inner() {
            RawLimit::Number(n) => rlimits.push(Rlimit {
                resource: kind,
                value: Some(n),
            }),
            RawLimit::Word(w) if w == "unlimited" => rlimits.push(Rlimit {
                resource: kind,
                value: None,
            }),
            RawLimit::Word(w) => cx.err(
                span.start,
                &format!("rlimits.{key}"),
                format!("`{w}`: expected a number or \"unlimited\""),
            ),
        }
    }

    let mut deps = Vec::new();
    for (field, list) in [("requires", raw.requires), ("wants", raw.wants)] {
        for dep in list {
            let span = dep.span();
            let dep = dep.into_inner();
            if !valid_name(&dep) {
                cx.err(span.start, field, format!("`{dep}` is not a service name"));
            } else if dep == name {
                cx.err(span.start, field, "a service cannot depend on itself");
            } else {
                deps.push((field, dep));
            }
        }
    }
    let (requires, wants): (Vec<_>, Vec<_>) = deps.into_iter().partition(|(f, _)| *f == "requires");
    let requires: Vec<String> = requires.into_iter().map(|(_, d)| d).collect();
    let wants: Vec<String> = wants.into_iter().map(|(_, d)| d).collect();

    let stop_signal = match raw.stop_signal {
        None => Signal::SIGTERM,
        Some(s) => {
            let span = s.span();
            match parse_signal(s.get_ref()) {
                Some(sig) => sig,
                None => {
                    cx.err(
                        span.start,
                        "stop_signal",
                        format!("`{}` is not a signal name (e.g. SIGTERM, INT)", s.get_ref()),
                    );
                    Signal::SIGTERM
                }
            }
        }
    };

    let r = &raw.restart;
    if r.limit == 0 {
        cx.err(0, "restart.limit", "must be at least 1");
    }
    if r.initial_backoff_ms > r.max_backoff_ms {
        cx.err(
            0,
            "restart.initial_backoff_ms",
            "must not exceed restart.max_backoff_ms",
        );
    }

    let readiness = match raw.readiness {
        None => Readiness::None,
        Some(c) => {
            let span = c.span();
            readiness(&mut cx, span.start, c.into_inner())
        }
    };
    if raw.kind == Kind::Oneshot && readiness != Readiness::None {
        cx.err(
            0,
            "readiness",
            "a oneshot is ready when it exits 0; remove the readiness table",
        );
    }
    if raw.watchdog_ms.is_some() && readiness != Readiness::SdNotify {
        cx.err(
            0,
            "watchdog_ms",
            "needs readiness kind \"sd-notify\" (WATCHDOG=1 arrives on NOTIFY_SOCKET)",
        );
    }
    if raw.watchdog_ms == Some(0) {
        cx.err(0, "watchdog_ms", "must be at least 1");
    }
    let mut probes = Vec::new();
    for p in raw.probe {
        let span = p.span();
        if let Some(p) = probe(&mut cx, span.start, p.into_inner()) {
            probes.push(p);
        }
    }
    if raw.log.tail_lines == 0 || raw.log.max_bytes < 1024 {
        cx.err(
            0,
            "log",
            "tail_lines must be at least 1 and max_bytes at least 1024",
        );
    }

    if !cx.errors.is_empty() {
        return Err(cx.errors);
    }
    Ok(ServiceSpec {
        name: name.to_owned(),
        file: file.to_owned(),
        command,
        args: raw.args,
        env: raw.env,
        user: raw.user,
        group: raw.group,
        cwd: raw.cwd,
        rlimits,
        kind: raw.kind,
        boot: raw.boot,
        requires,
        wants,
        stop_signal,
        stop_timeout_ms: raw.stop_timeout_ms.unwrap_or(5_000),
        start_timeout_ms: raw.start_timeout_ms.unwrap_or(30_000),
        watchdog_ms: raw.watchdog_ms,
        restart: raw.restart,
        readiness,
        probes,
        log: raw.log,
    })
}

/// `SIGTERM`, `TERM` or `term`.
pub fn parse_signal(s: &str) -> Option<Signal> {
    let up = s.to_ascii_uppercase();
    let full = if up.starts_with("SIG") {
        up
    } else {
        format!("SIG{up}")
    };
    Signal::from_str(&full).ok()
}

fn address(cx: &mut Ctx<'_>, at: usize, field: &str, a: Option<String>) -> Option<SocketAddr> {
    match a {
        None => {
            cx.err(at, field, "missing `address` (e.g. \"127.0.0.1:5060\")");
            None
        }
        Some(a) => {
            match a.parse() {
                Ok(sa) => Some(sa),
                Err(_) => {
                    cx.err(
                    at,
                    field,
                    format!("`{a}` is not an IP:port address (e.g. \"127.0.0.1:5060\", \"[::1]:80\")"),
                );
                    None
                }
            }
        }
    }
}

fn command(
    cx: &mut Ctx<'_>,
    at: usize,
    field: &str,
    c: Option<Vec<String>>,
) -> Option<Vec<String>> {
    match c {
        Some(c) if c.first().is_some_and(|p| p.starts_with('/')) => Some(c),
        _ => {
            cx.err(
                at,
                field,
                "`command` must be a non-empty list starting with an absolute path",
            );
            None
        }
    }
}

fn readiness(cx: &mut Ctx<'_>, at: usize, c: RawCheck) -> Readiness {
    let interval_ms = c.interval_ms.unwrap_or(100);
    let extra =
        c.timeout_ms.is_some() || c.rise.is_some() || c.fall.is_some() || c.restart.is_some();
    if extra {
        cx.err(
            at,
            "readiness",
            "timeout_ms/rise/fall/restart belong to [[probe]]; use start_timeout_ms for readiness",
        );
    }
    match c.kind.as_str() {
        "none" => Readiness::None,
        "notify-fd" => match c.fd {
            Some(fd) if (3..=255).contains(&fd) => Readiness::NotifyFd { fd },
            Some(fd) => {
                cx.err(
                    at,
                    "readiness.fd",
                    format!("{fd} must be between 3 and 255"),
                );
                Readiness::None
            }
            None => {
                cx.err(at, "readiness.fd", "notify-fd needs `fd = N` (3..255)");
                Readiness::None
            }
        },
        "sd-notify" | "sd_notify" => Readiness::SdNotify,
        "tcp" => {
            address(cx, at, "readiness.address", c.address).map_or(Readiness::None, |address| {
                Readiness::Tcp {
                    address,
                    interval_ms,
                }
            })
        }
        "command" => {
            command(cx, at, "readiness.command", c.command).map_or(Readiness::None, |command| {
                Readiness::Command {
                    command,
                    interval_ms,
                }
            })
        }
        other => {
            cx.err(
                at,
                "readiness.kind",
                format!("`{other}`: expected one of none, notify-fd, sd-notify, tcp, command"),
            );
            Readiness::None
        }
    }
}

fn probe(cx: &mut Ctx<'_>, at: usize, c: RawCheck) -> Option<ProbeSpec> {
    if c.fd.is_some() {
        cx.err(
            at,
            "probe.fd",
            "only readiness of kind notify-fd takes `fd`",
        );
    }
    let check = match c.kind.as_str() {
        "command" => ProbeCheck::Command {
            command: command(cx, at, "probe.command", c.command)?,
        },
        "tcp" => ProbeCheck::Tcp {
            address: address(cx, at, "probe.address", c.address)?,
        },
        "http" => {
            let path = c.path.unwrap_or_else(|| "/".to_owned());
            if !path.starts_with('/') || path.contains(char::is_whitespace) {
                cx.err(
                    at,
                    "probe.path",
                    format!("`{path}` must start with / and hold no spaces"),
                );
            }
            ProbeCheck::Http {
                address: address(cx, at, "probe.address", c.address)?,
                path,
            }
        }
        other => {
            cx.err(
                at,
                "probe.kind",
                format!("`{other}`: expected one of command, tcp, http"),
            );
            return None;
        }
    };
    let p = ProbeSpec {
        check,
        interval_ms: c.interval_ms.unwrap_or(5_000),
        timeout_ms: c.timeout_ms.unwrap_or(2_000),
        rise: c.rise.unwrap_or(2),
        fall: c.fall.unwrap_or(3),
        restart: c.restart.unwrap_or(false),
    };
    if p.rise == 0 || p.fall == 0 || p.interval_ms == 0 || p.timeout_ms == 0 {
        cx.err(
            at,
            "probe",
            "interval_ms, timeout_ms, rise and fall must be at least 1",
        );
        return None;
    }
    Some(p)
}

/// Load every `*.toml` in `dir`, sorted by name; all errors are collected.
pub fn load_dir(dir: &Path) -> Result<BTreeMap<String, ServiceSpec>, LoadError> {
    let entries = std::fs::read_dir(dir).map_err(|source| LoadError::Dir {
        dir: dir.to_owned(),
        source,
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut out = BTreeMap::new();
    let mut errors = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).map_err(|source| LoadError::File {
            file: file.clone(),
            source,
        })?;
        let name = file
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        match parse(&name, &file, &text) {
            Ok(spec) => {
                out.insert(name, spec);
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(LoadError::Invalid(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<ServiceSpec, Vec<SpecError>> {
        parse("svc", Path::new("/etc/flexvisor/services.d/svc.toml"), text)
    }

    #[test]
    fn minimal_definition_gets_defaults() {
        let s = p("command = \"/bin/sleep\"\nargs = [\"100\"]\n").unwrap();
        assert_eq!(s.kind, Kind::Longrun);
        assert_eq!(s.restart.policy, RestartPolicy::Always);
        assert_eq!(s.stop_signal, Signal::SIGTERM);
        assert_eq!(s.readiness, Readiness::None);
        assert!(!s.boot);
        assert!(p("command = \"/bin/true\"\nboot = true\n").unwrap().boot);
    }

    #[test]
    fn full_definition_parses() {
        let s = p(r#"
command = "/usr/bin/sip-proxy"
args = ["-c", "/etc/sip.toml"]
env = { RUST_LOG = "info" }
user = "sip"
cwd = "/var/lib/sip"
requires = ["db"]
wants = ["logger"]
stop_signal = "INT"
stop_timeout_ms = 2000
rlimits = { nofile = 65536, core = "unlimited" }
[restart]
policy = "on-failure"
limit = 3
[readiness]
kind = "notify-fd"
fd = 5
[[probe]]
kind = "http"
address = "127.0.0.1:8080"
path = "/health"
restart = true
[log]
max_bytes = 4096
files = 2
"#)
        .unwrap();
        assert_eq!(s.requires, vec!["db"]);
        assert_eq!(s.wants, vec!["logger"]);
        assert_eq!(s.stop_signal, Signal::SIGINT);
        assert_eq!(s.readiness, Readiness::NotifyFd { fd: 5 });
        assert_eq!(s.rlimits.len(), 2);
        assert!(matches!(s.probes[0].check, ProbeCheck::Http { .. }));
        assert_eq!(s.restart.limit, 3);
    }

    #[test]
    fn syntax_error_names_line() {
        let e = p("command = \"/bin/true\"\nargs = [\n").unwrap_err();
        assert_eq!(e[0].line, 3, "{e:?}");
    }

    #[test]
    fn unknown_field_names_line_and_field() {
        let e = p("command = \"/bin/true\"\n\ncomand = \"x\"\n").unwrap_err();
        let msg = e[0].to_string();
        assert!(
            msg.starts_with("/etc/flexvisor/services.d/svc.toml:3:"),
            "{msg}"
        );
        assert!(msg.contains("comand"), "{msg}");
    }

    #[test]
    fn bad_signal_is_located() {
        let e = p("command = \"/bin/true\"\nstop_signal = \"SIGFOO\"\n").unwrap_err();
        assert_eq!((e[0].line, e[0].field.as_deref()), (2, Some("stop_signal")));
    }

    #[test]
    fn relative_command_rejected() {
        let e = p("command = \"sleep\"\n").unwrap_err();
        assert_eq!(e[0].field.as_deref(), Some("command"));
    }

    #[test]
    fn bad_readiness_kind_is_located() {
        let e = p("command = \"/bin/true\"\n[readiness]\nkind = \"magic\"\n").unwrap_err();
        assert_eq!(e[0].field.as_deref(), Some("readiness.kind"));
        assert_eq!(e[0].line, 2);
    }

    #[test]
    fn locate_counts_lines_and_columns() {
        assert_eq!(locate("ab\ncd", 0), (1, 1));
        assert_eq!(locate("ab\ncd", 4), (2, 2));
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,200}") {
            let _ = p(&s);
        }
    }
}
