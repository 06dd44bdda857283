//! `flexctl image`: build node images per bay, boot one under qemu.
//! The logic lives in the `flexvisor-image` crate.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use flexvisor_image::{builder, qemu, slots, Options, Selection};

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Build the raw disk image(s) of one bay or all bays of a profile.
    ///
    /// Writes DIR/bayNN.img (GPT: ESP with UKI, system A/B, config, data),
    /// and beside it bayNN.vmlinuz, bayNN.initrd, bayNN.cmdline and
    /// bayNN.node.toml for direct qemu boot. Packages come from the Debian
    /// mirrors through apt, cached (FLEXVISOR_CACHE, default
    /// /var/cache/flexvisor for root). SOURCE_DATE_EPOCH fixes timestamps.
    Build {
        profile: PathBuf,
        /// Node bay, 1..14.
        #[arg(long, conflicts_with = "all", required_unless_present = "all")]
        bay: Option<u32>,
        /// Every bay of the profile (of --chassis, if given).
        #[arg(long)]
        all: bool,
        /// Chassis name, when the profile has several chassis.
        #[arg(long)]
        chassis: Option<String>,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// The static flexvisor binary (PID 1).
        #[arg(
            long,
            default_value = "target/x86_64-unknown-linux-musl/release/flexvisor"
        )]
        flexvisor: PathBuf,
        /// More static binaries for /usr/bin (flexctl, services); repeatable.
        #[arg(long = "bin")]
        bins: Vec<PathBuf>,
        /// Extra service definitions (TOML) for /etc/flexvisor/services.d; repeatable.
        #[arg(long = "service")]
        services: Vec<PathBuf>,
        /// The deployment's secrets file (`name = value` lines: replication
        /// and service passwords, SIP domains), put on each config
        /// partition as /config/secrets.toml. Without it the services that
        /// need secrets wait for one to be installed there.
        #[arg(long)]
        secrets: Option<PathBuf>,
        /// Size of the data partition in MiB.
        #[arg(long, default_value_t = 16)]
        data_mib: u64,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// The bay this node sits in as its BMC reports it over IPMI
    /// (`/dev/ipmi0`: PICMG site number, else a `bay=N` FRU field). Prints
    /// `bay=N source=ipmi-picmg|ipmi-fru`; exit 0 found, 3 no BMC or no
    /// bay reported (the initramfs then falls back to SMBIOS).
    Bay {
        /// The IPMI device.
        #[arg(long, default_value = "/dev/ipmi0")]
        device: PathBuf,
        /// Print JSON: {"bay": N|null, "source": ..., "error": ...}.
        #[arg(long)]
        json: bool,
    },
    /// Grow the data partition (fv-data) of a node disk or image file to
    /// its end, moving the backup GPT there (the initramfs runs it on
    /// first boot on both disks before building the data mirror).
    GrowData {
        /// Block device or image file.
        device: PathBuf,
    },
    /// Write the system of a new image (its slot A) into the slot not
    /// running on this node's disks (or image files), and have the next
    /// boot try it once: if flexvisor does not reach ready there (crash,
    /// watchdog, power cycle), the boot after rolls back to the old slot.
    /// The kernel and initramfs (ESP) are not updated.
    Update {
        /// The new image (DIR/bayNN.img of a newer build).
        #[arg(long)]
        from: PathBuf,
        /// The node's disks (both mirror members) or image files.
        #[arg(required = true)]
        disks: Vec<PathBuf>,
        /// The slot state file on the config mirror.
        #[arg(long, default_value = "/config/slot")]
        slot_file: PathBuf,
        /// The running slot (default: /run/flexvisor/slot, else the
        /// state's default).
        #[arg(long)]
        running: Option<String>,
    },
    /// Mark the slot this node booted as good once flexvisor is ready
    /// (the console report runs it): a tried slot becomes the default.
    Bless {
        #[arg(long, default_value = "/config/slot")]
        slot_file: PathBuf,
        /// The booted slot (default: /run/flexvisor/slot).
        #[arg(long)]
        booted: Option<String>,
    },
    /// Boot DIR/bayNN.img under qemu (TCG) with its second disk, NICs on
    /// loopback UDP sockets, the serial console on stdout and in
    /// DIR/bayNN.run/console.log, QMP at DIR/bayNN.run/qmp.sock.
    Boot {
        image: PathBuf,
        /// Boot through OVMF (UEFI) from the ESP instead of -kernel/-initrd.
        #[arg(long)]
        uefi: bool,
        /// qemu accelerator: tcg (works everywhere) or kvm.
        #[arg(long, default_value = "tcg")]
        accel: String,
        /// Guest memory in MiB.
        #[arg(long, default_value_t = 384)]
        memory: u32,
        /// Pretend the node sits in this bay (SMBIOS asset tag).
        #[arg(long)]
        as_bay: Option<u32>,
        /// Wait for `flexvisor: ready`, then power off through ACPI and
        /// exit: 0 when ready, 2 when not within --timeout.
        #[arg(long)]
        until_ready: bool,
        /// Seconds to wait for ready with --until-ready.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
}

fn read_slots(path: &std::path::Path) -> anyhow::Result<slots::State> {
    match std::fs::read_to_string(path) {
        Ok(t) => {
            Ok(slots::State::parse(&t).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(slots::State::default()),
        Err(e) => Err(anyhow::anyhow!("{}: {e}", path.display())),
    }
}

fn write_slots(path: &std::path::Path, st: &slots::State) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, st.render()).map_err(|e| anyhow::anyhow!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(())
}

pub fn run(cmd: Cmd) -> anyhow::Result<ExitCode> {
    match cmd {
        Cmd::Build {
            profile,
            bay,
            all,
            chassis,
            out,
            flexvisor,
            bins,
            services,
            secrets,
            data_mib,
            json,
        } => {
            let mut opts = Options::new(flexvisor);
            opts.extra_bins = bins;
            for s in services {
                let name = s
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let body = std::fs::read_to_string(&s)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", s.display()))?;
                opts.services.insert(name, body);
            }
            opts.secrets = secrets;
            opts.data_mib = data_mib;
            let sel = match (bay, all) {
                (Some(b), _) => Selection::Bay(b),
                (None, _) => Selection::All,
            };
            let mut say = |s: &str| eprintln!("flexctl image: {s}");
            match flexvisor_image::build(&profile, &sel, chassis.as_deref(), &out, &opts, &mut say)
            {
                Ok(built) => {
                    if json {
                        println!("{}", serde_json::to_string_pretty(&built)?);
                    } else {
                        print!("{}", builder::summary(&built));
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(flexvisor_image::BuildError::Profile(chassis::LoadError::Invalid(r))) => {
                    eprint!("{}", r.render());
                    Ok(ExitCode::from(1))
                }
                Err(e @ flexvisor_image::BuildError::Bay { .. }) => {
                    eprintln!("flexctl: {e}");
                    Ok(ExitCode::from(1))
                }
                Err(e) => Err(e.into()),
            }
        }
        Cmd::Update {
            from,
            disks,
            slot_file,
            running,
        } => {
            let state = read_slots(&slot_file)?;
            let running = running
                .or_else(|| std::fs::read_to_string("/run/flexvisor/slot").ok())
                .and_then(|s| slots::Slot::parse(&s))
                .unwrap_or(state.default);
            let target = running.other();
            for d in &disks {
                let n = slots::write_system(&from, d, target)?;
                println!(
                    "{}: slot {target} <- {} ({} MiB)",
                    d.display(),
                    from.display(),
                    n >> 20
                );
            }
            let (next, _) = slots::next(&state, slots::Event::Updated { slot: target });
            write_slots(&slot_file, &next)?;
            println!(
                "next boot tries slot {target} once; it becomes the default when flexvisor is ready there, else the boot after returns to slot {running}"
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Bless { slot_file, booted } => {
            let state = read_slots(&slot_file)?;
            let booted = booted
                .or_else(|| std::fs::read_to_string("/run/flexvisor/slot").ok())
                .and_then(|s| slots::Slot::parse(&s))
                .unwrap_or(state.default);
            match slots::next(&state, slots::Event::Ready { booted }) {
                (next, slots::Action::Committed(s)) => {
                    write_slots(&slot_file, &next)?;
                    println!("slot {s} reached ready: it is the default now");
                }
                _ => println!("slot {booted}: nothing to commit"),
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::GrowData { device } => match flexvisor_image::layout::grow_disk(&device) {
            Ok(g) if g.after == g.before => {
                println!(
                    "{}: fv-data already fills the disk ({} MiB)",
                    device.display(),
                    g.after >> 20
                );
                Ok(ExitCode::SUCCESS)
            }
            Ok(g) => {
                println!(
                    "{}: fv-data grown from {} to {} MiB",
                    device.display(),
                    g.before >> 20,
                    g.after >> 20
                );
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                eprintln!("flexctl image grow-data: {e}");
                Ok(ExitCode::from(2))
            }
        },
        Cmd::Bay { device, json } => {
            let found = flexvisor_image::bay::Bmc::open(&device).and_then(|mut b| b.bay());
            let (bay, source, error) = match &found {
                Ok(Some((b, s))) => (Some(*b), Some(s.as_str()), None),
                Ok(None) => (None, None, Some("the BMC reports no bay".to_owned())),
                Err(e) => (None, None, Some(e.to_string())),
            };
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "bay": bay, "source": source, "error": error })
                );
            } else if let (Some(b), Some(s)) = (bay, source) {
                println!("bay={b} source={s}");
            } else {
                eprintln!("flexctl image bay: {}", error.unwrap_or_default());
            }
            Ok(if bay.is_some() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(3)
            })
        }
        Cmd::Boot {
            image,
            uefi,
            memory,
            accel,
            as_bay,
            until_ready,
            timeout,
        } => {
            let mut spec = qemu::BootSpec::for_image(&image)?;
            if uefi {
                spec.direct = None;
            }
            spec.memory_mib = memory;
            spec.accel = accel;
            if as_bay.is_some() {
                spec.bay = as_bay;
            }
            spec.console_stdout = true;
            eprintln!(
                "flexctl image: console log {}, QMP {} (ACPI power-off: system_powerdown)",
                spec.console_log.display(),
                spec.qmp.display()
            );
            if until_ready {
                return match qemu::boot_until_ready(spec, std::time::Duration::from_secs(timeout)) {
                    Ok(r) => {
                        eprintln!(
                            "flexctl image: ready after {:.1} s; powered off",
                            r.to_ready.as_secs_f64()
                        );
                        Ok(ExitCode::SUCCESS)
                    }
                    Err(e) => {
                        eprintln!("flexctl image: {e}");
                        Ok(ExitCode::from(2))
                    }
                };
            }
            let mut vm = qemu::Vm::start(spec)?;
            let status = vm.wait()?;
            Ok(if status.success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
    }
}
