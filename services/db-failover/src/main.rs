//! `db-failover`: the db pair's promote/demote hooks. See the crate docs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use db_failover::credentials::Credentials;
use db_failover::report::Log;
use db_failover::target::{self, Choices};
use db_failover::{Action, Bounds, Stores};

/// Where flexvisor's node configuration is looked for, in order, when
/// neither `--node-config` nor FLEXVISOR_NODE_CONFIG names it.
const NODE_CONFIG_PATHS: [&str; 2] = ["/etc/flexvisor/node.toml", "/config/node.toml"];

/// Exit codes (health style): the transition failed in a store.
const EXIT_FAILED: u8 = 2;
/// Exit codes: nothing was attempted (configuration or usage).
const EXIT_UNKNOWN: u8 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "db-failover",
    version,
    about = "Promote or demote this db node: Redis master/replica and MariaDB read_only",
    long_about = "Promote or demote this db node of a C5 db pair.\n\n\
promote: Redis REPLICAOF NO ONE (verified with ROLE); MariaDB waits until the \
SQL thread has applied everything the peer wrote (bounded by --catchup-timeout), \
then SET GLOBAL read_only = OFF (verified).\n\
demote: MariaDB SET GLOBAL read_only = ON (verified), then Redis REPLICAOF \
<peer> <port> (verified: ROLE names the peer and the link comes up).\n\n\
Both stores are always attempted (unless --only names one); every step is \
one line on stderr. Installed as /usr/libexec/flexvisor/db-promote and \
db-demote (links to this binary), it acts as `promote` / `demote` without a \
subcommand; as redis-promote and redis-demote (the proxy pairs' hooks: their \
Redis holds registrations and call state), as `promote --only redis` / \
`demote --only redis`.\n\n\
Exit status: 0 done, 2 a store failed (the message names server and step), \
3 nothing attempted (bad configuration or arguments)."
)]
struct Cli {
    #[command(subcommand)]
    action: Option<Cmd>,
    #[command(flatten)]
    opts: Opts,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// This node became master: Redis master, MariaDB writable.
    Promote,
    /// This node became backup: MariaDB read-only, Redis replica of the peer.
    Demote,
}

#[derive(Debug, clap::Args)]
struct Opts {
    /// Node configuration (default: /etc/flexvisor/node.toml, then
    /// /config/node.toml). Gives the pair peer's address. Not read when
    /// --peer-host is given.
    #[arg(
        long,
        global = true,
        env = "FLEXVISOR_NODE_CONFIG",
        value_name = "PATH"
    )]
    node_config: Option<PathBuf>,
    /// The pair peer's address (instead of the node configuration).
    #[arg(long, global = true, value_name = "HOST")]
    peer_host: Option<String>,
    /// Local Redis address.
    #[arg(long, global = true, default_value = "127.0.0.1", value_name = "HOST")]
    redis_host: String,
    /// Local Redis port (and the peer's, unless --peer-redis-port).
    #[arg(long, global = true, default_value_t = 6379, value_name = "PORT")]
    redis_port: u16,
    /// The peer's Redis port.
    #[arg(long, global = true, value_name = "PORT")]
    peer_redis_port: Option<u16>,
    /// Local MariaDB unix socket.
    #[arg(
        long,
        global = true,
        default_value = "/run/mysqld/mysqld.sock",
        value_name = "PATH"
    )]
    mysql_socket: PathBuf,
    /// Local MariaDB over TCP instead of the socket.
    #[arg(long, global = true, value_name = "HOST")]
    mysql_host: Option<String>,
    /// Port for --mysql-host.
    #[arg(long, global = true, default_value_t = 3306, value_name = "PORT")]
    mysql_port: u16,
    /// Secrets file with `mariadb.user`, `mariadb.password`,
    /// `redis.password` (`name = value` lines). Default: the node's secrets
    /// file if it exists; else MariaDB root over the socket, Redis without AUTH.
    #[arg(long, global = true, value_name = "PATH")]
    credentials: Option<PathBuf>,
    /// Promote: longest wait for replication to catch up.
    #[arg(long, global = true, default_value_t = 15, value_name = "SECONDS")]
    catchup_timeout: u64,
    /// How long to keep retrying while the local MariaDB/Redis does not
    /// accept connections yet (first boot: the hook of the first VRRP
    /// state runs while the servers are still starting).
    #[arg(long, global = true, default_value_t = 8, value_name = "SECONDS")]
    start_wait: u64,
    /// Demote: longest wait for the Redis replication link (a full resync
    /// includes the master's repl-diskless-sync-delay, 5 s by default).
    #[arg(long, global = true, default_value_t = 20, value_name = "SECONDS")]
    link_timeout: u64,
    /// Act on one store only (default: both). Proxy pairs use `redis`.
    #[arg(long, global = true, value_enum, value_name = "STORE")]
    only: Option<Stores>,
    /// Print a JSON summary on stdout.
    #[arg(long, global = true)]
    json: bool,
}

/// `db-promote ARGS` means `db-failover promote ARGS`; `redis-promote ARGS`
/// means `db-failover promote --only redis ARGS`.
fn args() -> Vec<String> {
    let mut args: Vec<String> = std::env::args().collect();
    let name = args
        .first()
        .and_then(|a| Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("");
    let implied: &[&str] = match name {
        "db-promote" => &["promote"],
        "db-demote" => &["demote"],
        "redis-promote" => &["promote", "--only", "redis"],
        "redis-demote" => &["demote", "--only", "redis"],
        _ => &[],
    };
    for (i, a) in implied.iter().enumerate() {
        args.insert(1 + i, (*a).to_owned());
    }
    args
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(args());
    let Some(cmd) = cli.action else {
        eprintln!("db-failover: name an action: promote or demote (see --help)");
        return ExitCode::from(EXIT_UNKNOWN);
    };
    let action = match cmd {
        Cmd::Promote => Action::Promote,
        Cmd::Demote => Action::Demote,
    };
    match run(action, &cli.opts) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("db-failover {}: {e:#}", action.as_str());
            ExitCode::from(EXIT_UNKNOWN)
        }
    }
}

fn run(action: Action, o: &Opts) -> anyhow::Result<ExitCode> {
    // The peer (and the default secrets file) from the node configuration.
    let mut secrets_default = None;
    let peer = if o.peer_host.is_some() {
        None
    } else {
        let path = match &o.node_config {
            Some(p) => p.clone(),
            None => NODE_CONFIG_PATHS
                .iter()
                .map(PathBuf::from)
                .find(|p| p.exists())
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "no node configuration at {}; pass --node-config or --peer-host",
                        NODE_CONFIG_PATHS.join(" or ")
                    )
                })?,
        };
        let node = target::load_node(&path)?;
        let redis_only = o.only == Some(Stores::Redis);
        let ip = target::peer_from_node(&node, &path, redis_only)?;
        secrets_default = Some(PathBuf::from(&node.secrets));
        Some((
            ip,
            format!("{} ({})", path.display(), node.pair.peer.hostname),
        ))
    };
    let creds = match (&o.credentials, secrets_default) {
        (Some(p), _) => Credentials::load(p)?,
        (None, Some(p)) if p.exists() => Credentials::load(&p)?,
        _ => Credentials::default(),
    };
    let choices = Choices {
        peer_host: o.peer_host.clone(),
        redis_host: o.redis_host.clone(),
        redis_port: o.redis_port,
        peer_redis_port: o.peer_redis_port,
        mysql_socket: o.mysql_socket.clone(),
        mysql_host: o.mysql_host.clone(),
        mysql_port: o.mysql_port,
    };
    let targets = target::targets(&choices, peer, &creds);
    let bounds = Bounds {
        catchup: Duration::from_secs(o.catchup_timeout),
        link: Duration::from_secs(o.link_timeout),
        start_wait: Duration::from_secs(o.start_wait),
        ..Bounds::default()
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut log = Log::new(action);
    eprintln!(
        "db-failover {}: peer {} (from {})",
        action.as_str(),
        targets.peer_host,
        targets.peer_source
    );
    let summary = rt.block_on(db_failover::run(
        action,
        &targets,
        o.only.unwrap_or(Stores::Both),
        bounds,
        &mut log,
    ));
    if o.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    }
    for w in summary
        .redis
        .warnings
        .iter()
        .chain(&summary.mariadb.warnings)
    {
        eprintln!("db-failover {}: warning: {w}", action.as_str());
    }
    if summary.ok {
        eprintln!(
            "db-failover {}: done: redis {}, mariadb {}",
            action.as_str(),
            summary.redis.state,
            summary.mariadb.state
        );
        Ok(ExitCode::SUCCESS)
    } else {
        for e in summary.errors() {
            eprintln!("db-failover {}: error: {e}", action.as_str());
        }
        Ok(ExitCode::from(EXIT_FAILED))
    }
}
