//! `flexvisor-vrrp`: runs VRRPv3 instances standalone (outside the supervisor), from
//! a TOML file or from flags. Used by the integration tests inside network
//! namespaces and by operators to try a configuration.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use flexvisor_vrrp::config::{
    self, AnnounceSettings, InstanceConfig, TrackerConfig, VirtualAddress,
};
use flexvisor_vrrp::{Health, Instance, Status};
use tokio::signal::unix::{signal, SignalKind};

const HELP: &str = "\
flexvisor-vrrp: VRRP version 3 (RFC 5798) shared addresses

USAGE:
    flexvisor-vrrp --config FILE [OPTIONS]
    flexvisor-vrrp --interface IF --vrid N --address A[/P]... [INSTANCE FLAGS] [OPTIONS]

OPTIONS:
    --config FILE          TOML file with [[instance]] tables (see docs of flexvisor_vrrp::config)
    --check-config         validate the configuration and exit (0 valid, 3 invalid)
    --status-file FILE     keep FILE updated with the JSON status of every instance
    --json                 print status as JSON (on SIGUSR1); default is text
    -h, --help             this text

INSTANCE FLAGS (one instance, instead of --config):
    --name NAME            instance name (default vrrp<VRID>)
    --interface IF         interface to run on
    --vrid N               virtual router id, 1..255
    --priority N           1..255, 255 = address owner (default 100)
    --address A[/P]        virtual address, repeatable (default prefix /32 or /128)
    --advert-interval CS   advertisement interval in centiseconds (default 100)
    --nopreempt            do not preempt a lower-priority master
    --no-accept            Accept_Mode off: as a non-owner master, drop traffic addressed
                           to the virtual addresses (nf_tables; ARP and ND still answered)
    --preempt-delay CS     do not preempt until CS centiseconds after startup
    --unicast-peer IP      send to this peer instead of multicast, repeatable
    --source IP            source address (default: the interface's first address)
    --tracker NAME[:W]=FILE  tracker verdict read from FILE (OK/WARNING/CRITICAL/UNKNOWN
                           or 0..3); weight W, none = fault when CRITICAL
    --garp-repeat N        announcements per burst (default 5)
    --garp-spacing-ms MS   gap inside a burst (default 10)
    --garp-delay-ms MS     second burst after becoming master (default 5000, 0 none)
    --garp-refresh-ms MS   periodic re-announcement while master (default 0, none)

SIGNALS: SIGTERM/SIGINT stop in an orderly way (priority 0, addresses removed);
SIGUSR1 prints the status to standard output.
EXIT: 0 stopped cleanly, 2 an instance failed to start, 3 usage or configuration error.
";

struct Opts {
    config: Option<PathBuf>,
    check: bool,
    status_file: Option<PathBuf>,
    json: bool,
    flags: Option<InstanceConfig>,
}

fn parse_args(args: Vec<String>) -> Result<Option<Opts>, String> {
    let mut o = Opts {
        config: None,
        check: false,
        status_file: None,
        json: false,
        flags: None,
    };
    let mut inst = InstanceConfig {
        name: String::new(),
        interface: String::new(),
        vrid: 0,
        priority: 100,
        advert_interval_cs: 100,
        preempt: true,
        preempt_delay_cs: 0,
        hold_preempt: false,
        accept: true,
        addresses: Vec::new(),
        unicast_peers: Vec::new(),
        source: None,
        announce: AnnounceSettings::default(),
        trackers: Vec::new(),
    };
    let mut any_instance_flag = false;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut val = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        fn num<T: std::str::FromStr>(flag: &str, v: String) -> Result<T, String> {
            v.parse()
                .map_err(|_| format!("{flag}: {v:?} is not a valid number"))
        }
        fn ip(flag: &str, v: String) -> Result<IpAddr, String> {
            v.parse()
                .map_err(|_| format!("{flag}: {v:?} is not an IP address"))
        }
        match a.as_str() {
            "-h" | "--help" => return Ok(None),
            "--config" => o.config = Some(val(&a)?.into()),
            "--check-config" => o.check = true,
            "--status-file" => o.status_file = Some(val(&a)?.into()),
            "--json" => o.json = true,
            flag => {
                any_instance_flag = true;
                match flag {
                    "--name" => inst.name = val(flag)?,
                    "--interface" => inst.interface = val(flag)?,
                    "--vrid" => inst.vrid = num(flag, val(flag)?)?,
                    "--priority" => inst.priority = num(flag, val(flag)?)?,
                    "--address" => inst.addresses.push(
                        val(flag)?
                            .parse::<VirtualAddress>()
                            .map_err(|e| format!("--address: {e}"))?,
                    ),
                    "--advert-interval" => inst.advert_interval_cs = num(flag, val(flag)?)?,
                    "--nopreempt" => inst.preempt = false,
                    "--no-accept" => inst.accept = false,
                    "--preempt-delay" => inst.preempt_delay_cs = num(flag, val(flag)?)?,
                    "--unicast-peer" => inst.unicast_peers.push(ip(flag, val(flag)?)?),
                    "--source" => inst.source = Some(ip(flag, val(flag)?)?),
                    "--tracker" => {
                        let v = val(flag)?;
                        let (spec, file) = v
                            .split_once('=')
                            .ok_or_else(|| format!("--tracker: {v:?} is not NAME[:WEIGHT]=FILE"))?;
                        let (name, weight) = match spec.split_once(':') {
                            Some((n, w)) => (n, Some(num::<i16>(flag, w.to_string())?)),
                            None => (spec, None),
                        };
                        inst.trackers.push(TrackerConfig {
                            name: name.to_string(),
                            weight,
                            file: Some(file.into()),
                        });
                    }
                    "--garp-repeat" => inst.announce.repeat = num(flag, val(flag)?)?,
                    "--garp-spacing-ms" => inst.announce.spacing_ms = num(flag, val(flag)?)?,
                    "--garp-delay-ms" => inst.announce.delay_ms = num(flag, val(flag)?)?,
                    "--garp-refresh-ms" => inst.announce.refresh_ms = num(flag, val(flag)?)?,
                    other => return Err(format!("unknown argument {other:?} (see --help)")),
                }
            }
        }
    }
    if any_instance_flag {
        if o.config.is_some() {
            return Err("give either --config or instance flags, not both".into());
        }
        if inst.interface.is_empty() {
            return Err("--interface is required".into());
        }
        if inst.name.is_empty() {
            inst.name = format!("vrrp{}", inst.vrid);
        }
        inst.validate().map_err(|e| e.to_string())?;
        o.flags = Some(inst);
    } else if o.config.is_none() {
        return Err("give --config FILE or instance flags (see --help)".into());
    }
    Ok(Some(o))
}

fn read_verdict(file: &std::path::Path) -> Health {
    match std::fs::read_to_string(file) {
        Ok(s) => match s.trim().to_ascii_uppercase().as_str() {
            "OK" | "0" => Health::Ok,
            "WARNING" | "1" => Health::Warning,
            "CRITICAL" | "2" => Health::Critical,
            _ => Health::Unknown,
        },
        Err(_) => Health::Unknown,
    }
}

fn render(statuses: &[Status], json: bool) -> String {
    if json {
        return serde_json::to_string_pretty(statuses)
            .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    }
    statuses.iter().map(|s| format!("{s}\n")).collect()
}

fn write_status(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .is_err()
    {
        eprintln!(
            "flexvisor-vrrp: cannot write status file {}",
            path.display()
        );
    }
}

async fn run(opts: Opts, configs: Vec<InstanceConfig>) -> ExitCode {
    let (tx, mut transitions) = tokio::sync::mpsc::unbounded_channel();
    let mut instances = Vec::new();
    let mut trackers = Vec::new();
    for cfg in configs {
        let mut verdicts = BTreeMap::new();
        for t in &cfg.trackers {
            if let Some(f) = &t.file {
                verdicts.insert(t.name.clone(), read_verdict(f));
                trackers.push((instances.len(), t.name.clone(), f.clone()));
            }
        }
        match Instance::start(cfg, verdicts, tx.clone()).await {
            Ok(i) => instances.push(i),
            Err(e) => {
                eprintln!("flexvisor-vrrp: {e}");
                for i in instances {
                    let _ = i.stop().await;
                }
                return ExitCode::from(2);
            }
        }
    }
    let (Ok(mut term), Ok(mut int), Ok(mut usr1)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::user_defined1()),
    ) else {
        eprintln!("flexvisor-vrrp: cannot install signal handlers");
        return ExitCode::from(2);
    };
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut last_written = String::new();
    let mut last_verdicts: BTreeMap<(usize, String), Health> = BTreeMap::new();
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = usr1.recv() => {
                let st: Vec<Status> = instances.iter().map(|i| i.status()).collect();
                print!("{}", render(&st, opts.json));
                if opts.json { println!(); }
            }
            Some(t) = transitions.recv() => {
                eprintln!("flexvisor-vrrp: {}: {} -> {} ({}), priority {}", t.instance, t.from, t.to, t.cause, t.priority);
            }
            _ = tick.tick() => {
                for (idx, name, file) in &trackers {
                    let h = read_verdict(file);
                    let key = (*idx, name.clone());
                    if last_verdicts.get(&key) != Some(&h) {
                        last_verdicts.insert(key, h);
                        if let Some(i) = instances.get(*idx) {
                            let _ = i.set_tracker(name, h).await;
                        }
                    }
                }
                if let Some(path) = &opts.status_file {
                    let st: Vec<Status> = instances.iter().map(|i| i.status()).collect();
                    let text = render(&st, true);
                    if text != last_written {
                        write_status(path, &text);
                        last_written = text;
                    }
                }
            }
        }
    }
    for i in instances {
        if let Err(e) = i.stop().await {
            eprintln!("flexvisor-vrrp: {e}");
        }
    }
    if let Some(path) = &opts.status_file {
        let _ = std::fs::remove_file(path);
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args().skip(1).collect()) {
        Ok(Some(o)) => o,
        Ok(None) => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("flexvisor-vrrp: {e}");
            return ExitCode::from(3);
        }
    };
    let configs = match (&opts.config, &opts.flags) {
        (Some(path), _) => match config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("flexvisor-vrrp: {e}");
                return ExitCode::from(3);
            }
        },
        (None, Some(f)) => vec![f.clone()],
        (None, None) => return ExitCode::from(3),
    };
    if opts.check {
        println!("configuration valid: {} instance(s)", configs.len());
        return ExitCode::SUCCESS;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("flexvisor-vrrp: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    rt.block_on(run(opts, configs))
}
