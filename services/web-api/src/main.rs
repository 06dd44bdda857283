//! `web-api`: daemon and admin commands of the provisioning API (see the
//! library docs for the modules).

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use web_api::config::{redact, Config};
use web_api::{api, notify, secrets, server, store, tls};

const HELP: &str = "\
web-api: HTTPS provisioning API (flexvisor web nodes)

USAGE:
    web-api --config FILE [--notify-fd N]    run the API server
    web-api --config FILE --check-config     check the configuration (and the
                                             certificate files) and exit
    web-api gen-cert --cert FILE --key FILE [--name NAME]...
                                             write a self-signed certificate for
                                             labs (default names: localhost, 127.0.0.1)
    web-api admin add --config FILE --username NAME [--iterations N]
                                             create an API admin; the password is
                                             read from the first line of stdin
    web-api admin list --config FILE [--json]
                                             the API admins and when they were created
    web-api admin delete --config FILE --username NAME [--force]
                                             remove an API admin (a running server
                                             forgets a cached login within 60 s);
                                             the last admin only with --force
    web-api probe --config FILE [--timeout-ms N] [--json]
                                             health check of the running daemon
                                             (GET /health, server pinned to tls.cert):
                                             exit 0 OK, 2 CRITICAL, 3 UNKNOWN

OPTIONS:
    --config FILE     TOML configuration: listen, database_url, [tls] cert/key,
                      db_max_connections, max_connections, shutdown_grace_secs,
                      workers, freebind, apply_schema (services/web-api/README.md)
    --notify-fd N     write a newline to fd N once serving (s6/flexvisor readiness)
    -h, --help        this text
    -V, --version     version

Readiness: if NOTIFY_SOCKET is set, READY=1 is sent there too.
Signals: SIGTERM/SIGINT stop accepting, finish in-flight requests (at most
shutdown_grace_secs), then exit 0.
Exit codes: 0 OK, 1 runtime failure (database, bind), 2 invalid configuration,
3 usage error (probe: 0 OK, 2 CRITICAL, 3 UNKNOWN).
";

enum Cmd {
    Run {
        config: PathBuf,
        notify_fd: Option<i32>,
        check: bool,
    },
    GenCert {
        cert: PathBuf,
        key: PathBuf,
        names: Vec<String>,
    },
    AdminList {
        config: PathBuf,
        json: bool,
    },
    AdminDelete {
        config: PathBuf,
        username: String,
        force: bool,
    },
    AdminAdd {
        config: PathBuf,
        username: String,
        iterations: u32,
    },
    Probe {
        config: PathBuf,
        timeout_ms: u64,
        json: bool,
    },
    Help,
    Version,
}

fn value<'a>(it: &mut impl Iterator<Item = &'a String>, flag: &str) -> Result<&'a String, String> {
    it.next()
        .ok_or_else(|| format!("{flag} needs a value (see --help)"))
}

fn parse_args(args: &[String]) -> Result<Cmd, String> {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        return Ok(Cmd::Help);
    }
    if args.iter().any(|a| a == "-V" || a == "--version") {
        return Ok(Cmd::Version);
    }
    match args.first().map(String::as_str) {
        Some("gen-cert") => {
            let (mut cert, mut key, mut names) = (None, None, Vec::new());
            let mut it = args[1..].iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--cert" => cert = Some(PathBuf::from(value(&mut it, a)?)),
                    "--key" => key = Some(PathBuf::from(value(&mut it, a)?)),
                    "--name" => names.push(value(&mut it, a)?.clone()),
                    other => return Err(format!("gen-cert: unknown argument {other:?}")),
                }
            }
            if names.is_empty() {
                names = vec!["localhost".into(), "127.0.0.1".into()];
            }
            Ok(Cmd::GenCert {
                cert: cert.ok_or("gen-cert needs --cert FILE")?,
                key: key.ok_or("gen-cert needs --key FILE")?,
                names,
            })
        }
        Some("probe") => {
            let (mut config, mut timeout_ms, mut json) = (None, 3000, false);
            let mut it = args[1..].iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--config" => config = Some(PathBuf::from(value(&mut it, a)?)),
                    "--json" => json = true,
                    "--timeout-ms" => {
                        let v = value(&mut it, a)?;
                        timeout_ms = v
                            .parse()
                            .ok()
                            .filter(|n| (1..=600_000).contains(n))
                            .ok_or_else(|| format!("--timeout-ms {v}: expected 1..600000"))?;
                    }
                    other => return Err(format!("probe: unknown argument {other:?}")),
                }
            }
            Ok(Cmd::Probe {
                config: config.ok_or("probe needs --config FILE")?,
                timeout_ms,
                json,
            })
        }
        Some("admin") if args.get(1).map(String::as_str) == Some("list") => {
            let (mut config, mut json) = (None, false);
            let mut it = args[2..].iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--config" => config = Some(PathBuf::from(value(&mut it, a)?)),
                    "--json" => json = true,
                    other => return Err(format!("admin list: unknown argument {other:?}")),
                }
            }
            Ok(Cmd::AdminList {
                config: config.ok_or("admin list needs --config FILE")?,
                json,
            })
        }
        Some("admin") if args.get(1).map(String::as_str) == Some("delete") => {
            let (mut config, mut username, mut force) = (None, None, false);
            let mut it = args[2..].iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--config" => config = Some(PathBuf::from(value(&mut it, a)?)),
                    "--username" => username = Some(value(&mut it, a)?.clone()),
                    "--force" => force = true,
                    other => return Err(format!("admin delete: unknown argument {other:?}")),
                }
            }
            Ok(Cmd::AdminDelete {
                config: config.ok_or("admin delete needs --config FILE")?,
                username: username.ok_or("admin delete needs --username NAME")?,
                force,
            })
        }
        Some("admin") => {
            if args.get(1).map(String::as_str) != Some("add") {
                return Err(
                    "admin: expected `admin add`, `admin list` or `admin delete` (see --help)"
                        .into(),
                );
            }
            let (mut config, mut username, mut iterations) =
                (None, None, secrets::DEFAULT_ITERATIONS);
            let mut it = args[2..].iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--config" => config = Some(PathBuf::from(value(&mut it, a)?)),
                    "--username" => username = Some(value(&mut it, a)?.clone()),
                    "--iterations" => {
                        let v = value(&mut it, a)?;
                        iterations = v
                            .parse()
                            .ok()
                            .filter(|n| (1000..=10_000_000).contains(n))
                            .ok_or_else(|| format!("--iterations {v}: expected 1000..10000000"))?;
                    }
                    other => return Err(format!("admin add: unknown argument {other:?}")),
                }
            }
            Ok(Cmd::AdminAdd {
                config: config.ok_or("admin add needs --config FILE")?,
                username: username.ok_or("admin add needs --username NAME")?,
                iterations,
            })
        }
        _ => {
            let (mut config, mut notify_fd, mut check) = (None, None, false);
            let mut it = args.iter();
            while let Some(a) = it.next() {
                match a.as_str() {
                    "--check-config" => check = true,
                    "--config" => config = Some(PathBuf::from(value(&mut it, a)?)),
                    "--notify-fd" => {
                        let v = value(&mut it, a)?;
                        notify_fd = Some(
                            v.parse::<i32>()
                                .map_err(|_| format!("--notify-fd {v}: not a number"))?,
                        );
                    }
                    other => return Err(format!("unknown argument {other:?} (see --help)")),
                }
            }
            Ok(Cmd::Run {
                config: config.ok_or("--config FILE is required (see --help)")?,
                notify_fd,
                check,
            })
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match parse_args(&args) {
        Err(e) => {
            eprintln!("web-api: {e}");
            ExitCode::from(3)
        }
        Ok(Cmd::Help) => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        Ok(Cmd::Version) => {
            println!("web-api {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Cmd::GenCert { cert, key, names }) => {
            match tls::generate_self_signed(&names, &cert, &key) {
                Ok(()) => {
                    println!(
                        "web-api: wrote {} and {} for {}",
                        cert.display(),
                        key.display(),
                        names.join(", ")
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("web-api: {e}");
                    ExitCode::from(1)
                }
            }
        }
        Ok(Cmd::AdminAdd {
            config,
            username,
            iterations,
        }) => admin_add(&config, &username, iterations),
        Ok(Cmd::AdminList { config, json }) => admin_list(&config, json),
        Ok(Cmd::AdminDelete {
            config,
            username,
            force,
        }) => admin_delete(&config, &username, force),
        Ok(Cmd::Run {
            config,
            notify_fd,
            check,
        }) => run(&config, notify_fd, check),
        Ok(Cmd::Probe {
            config,
            timeout_ms,
            json,
        }) => probe(&config, timeout_ms, json),
    }
}

fn probe(path: &Path, timeout_ms: u64, json: bool) -> ExitCode {
    let report = |v: &web_api::probe::Verdict| {
        if json {
            println!(
                "{}",
                serde_json::json!({"status": v.word(), "code": v.code, "detail": v.detail})
            );
        } else {
            println!("web-api {}: {}", v.word(), v.detail);
        }
        ExitCode::from(v.code)
    };
    let unknown = |detail: String| web_api::probe::Verdict { code: 3, detail };
    let cfg = match Config::load(path) {
        Ok(c) => c,
        Err(e) => return report(&unknown(e.to_string())),
    };
    let cert = match tls::load_certs(&cfg.tls.cert) {
        Ok(mut chain) => chain.remove(0),
        Err(e) => return report(&unknown(e.to_string())),
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(&unknown(format!("cannot start runtime: {e}"))),
    };
    let v = rt.block_on(web_api::probe::probe(
        web_api::probe::target(cfg.listen),
        cert,
        Duration::from_millis(timeout_ms),
    ));
    report(&v)
}

fn load(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("web-api: {e}");
        ExitCode::from(2)
    })
}

fn runtime(workers: usize) -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("web-api: cannot start runtime: {e}");
            ExitCode::from(1)
        })
}

/// Runs `f` against the database of `cfg` (schema applied if it says
/// so); errors are printed, exit 1.
fn with_store<F>(cfg: &Config, f: F) -> ExitCode
where
    F: AsyncFnOnce(&store::Store) -> ExitCode,
{
    let rt = match runtime(1) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async {
        let st = match store::Store::connect(&cfg.database_url, 1).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("web-api: {e}");
                return ExitCode::from(1);
            }
        };
        if cfg.apply_schema {
            if let Err(e) = st.apply_schema().await {
                eprintln!("web-api: applying schema: {e}");
                return ExitCode::from(1);
            }
        }
        f(&st).await
    })
}

fn admin_list(path: &Path, json: bool) -> ExitCode {
    let cfg = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    with_store(&cfg, async |st: &store::Store| {
        match st.list_admins().await {
            Ok(admins) => {
                if json {
                    let v: Vec<_> = admins
                        .iter()
                        .map(|(u, c)| serde_json::json!({"username": u, "created": c}))
                        .collect();
                    println!("{}", serde_json::json!({ "admins": v }));
                } else if admins.is_empty() {
                    println!("web-api: no admins (add one with `web-api admin add`)");
                } else {
                    println!("{:<32} CREATED (UTC)", "USERNAME");
                    for (u, c) in &admins {
                        println!("{u:<32} {c}");
                    }
                }
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("web-api: {e}");
                ExitCode::from(1)
            }
        }
    })
}

fn admin_delete(path: &Path, username: &str, force: bool) -> ExitCode {
    let cfg = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    with_store(&cfg, async |st: &store::Store| {
        match st.delete_admin(username, force).await {
            Ok(true) => {
                println!("web-api: admin {username} deleted");
                ExitCode::SUCCESS
            }
            Ok(false) => {
                eprintln!("web-api: no admin named {username:?}");
                ExitCode::from(1)
            }
            Err(e) => {
                eprintln!("web-api: {e}");
                ExitCode::from(1)
            }
        }
    })
}

fn admin_add(path: &Path, username: &str, iterations: u32) -> ExitCode {
    // A bad configuration is reported before the password is asked for.
    let cfg = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let name_ok = !username.is_empty()
        && username.len() <= 64
        && username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-@".contains(&b));
    if !name_ok {
        eprintln!("web-api: --username {username:?}: 1 to 64 letters, digits or ._-@");
        return ExitCode::from(3);
    }
    let mut line = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("web-api: reading the password from stdin: {e}");
        return ExitCode::from(1);
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.chars().count() < 8 {
        eprintln!("web-api: the password (first line of stdin) must have at least 8 characters");
        return ExitCode::from(3);
    }
    let hash = secrets::hash_admin_password(password, iterations);
    with_store(&cfg, async |st: &store::Store| {
        match st.add_admin(username, &hash).await {
            Ok(()) => {
                println!("web-api: admin {username} added");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("web-api: {e}");
                ExitCode::from(1)
            }
        }
    })
}

fn run(path: &Path, notify_fd: Option<i32>, check: bool) -> ExitCode {
    let cfg = match load(path) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let tls_cfg = match tls::server_config(&cfg.tls.cert, &cfg.tls.key) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("web-api: {}: field `tls`: {e}", path.display());
            return ExitCode::from(2);
        }
    };
    if check {
        println!(
            "web-api: {}: OK (listen {}, database {})",
            path.display(),
            cfg.listen,
            redact(&cfg.database_url)
        );
        return ExitCode::SUCCESS;
    }
    let rt = match runtime(cfg.workers) {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    rt.block_on(async move {
        // An unreachable database does not stop the daemon: it serves 503
        // (and /health says why) until the database answers; a web node may
        // boot before the db pair holds its shared IP.
        let (st, reachable) =
            match store::Store::connect(&cfg.database_url, cfg.db_max_connections).await {
                Ok(s) => (s, true),
                Err(e) => {
                    eprintln!("web-api: {e}; serving 503 until the database answers");
                    match store::Store::connect_lazy(&cfg.database_url, cfg.db_max_connections) {
                        Ok(s) => (s, false),
                        Err(e) => {
                            eprintln!("web-api: {e}");
                            return ExitCode::from(1);
                        }
                    }
                }
            };
        if cfg.apply_schema {
            if reachable {
                if let Err(e) = st.apply_schema().await {
                    eprintln!("web-api: applying schema: {e}");
                    return ExitCode::from(1);
                }
            } else {
                let st = st.clone();
                tokio::spawn(async move {
                    loop {
                        match st.apply_schema().await {
                            Ok(()) => {
                                eprintln!("web-api: database reachable, schema applied");
                                break;
                            }
                            Err(_) => tokio::time::sleep(Duration::from_secs(2)).await,
                        }
                    }
                });
            }
        }
        let listener = match server::bind(cfg.listen, cfg.freebind) {
            Ok(l) => l,
            Err(e) => {
                eprintln!(
                    "web-api: cannot listen on {} (field `listen`): {e}",
                    cfg.listen
                );
                return ExitCode::from(1);
            }
        };
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let app = Arc::new(api::App::new(st));
        let srv = tokio::spawn(server::run(
            listener,
            tls_cfg,
            app,
            cfg.max_connections,
            stop_rx,
            Duration::from_secs(cfg.shutdown_grace_secs),
        ));
        eprintln!(
            "web-api: serving https://{} (database {})",
            cfg.listen,
            redact(&cfg.database_url)
        );
        if let Err(e) = notify::sd_notify_ready() {
            eprintln!("web-api: NOTIFY_SOCKET: {e}");
        }
        if let Some(fd) = notify_fd {
            if let Err(e) = notify::fd_notify_ready(fd) {
                eprintln!("web-api: {e}");
            }
        }
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            eprintln!("web-api: cannot install signal handlers");
            return ExitCode::from(1);
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        eprintln!("web-api: stopping: no new connections, finishing in-flight requests");
        let _ = stop_tx.send(true);
        let _ = srv.await;
        eprintln!("web-api: stopped");
        ExitCode::SUCCESS
    })
}
