//! Filesystem images built without root or loop mounts: EROFS from a
//! directory (`mkfs.erofs`), FAT from a directory (`mkfs.fat` + `mcopy`),
//! and the unified kernel image (`objcopy` onto systemd's EFI stub).
//!
//! Every tool is run with its randomness and clocks pinned: given UUIDs and
//! volume serials, `-T`/`SOURCE_DATE_EPOCH`, objcopy under a frozen clock,
//! and every staged file's mtime set to the epoch.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::ids::Uuid;

/// Why a filesystem could not be built.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error("cannot run `{tool}` (install the `{package}` package): {source}")]
    Spawn {
        tool: &'static str,
        package: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("`{cmd}` failed: {stderr}")]
    Failed { cmd: String, stderr: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the EFI stub {0} is missing (install the `systemd-boot-efi` package)")]
    NoStub(PathBuf),
}

fn run(tool: &'static str, package: &'static str, cmd: &mut Command) -> Result<(), FsError> {
    let out = cmd.output().map_err(|source| FsError::Spawn {
        tool,
        package,
        source,
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(FsError::Failed {
            cmd: format!("{cmd:?}"),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// `epoch` as `YYYY-MM-DD hh:mm:ss` (UTC), the civil-from-days algorithm.
pub fn utc(epoch: u64) -> String {
    let days = (epoch / 86_400) as i64;
    let secs = epoch % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// A command run with the clock frozen at `epoch` (libfaketime): objcopy
/// stamps the PE header with the wall clock.
fn frozen(tool: &str, epoch: u64) -> Command {
    let mut c = Command::new("faketime");
    c.env("TZ", "UTC").args(["-f", &utc(epoch), tool]);
    c
}

/// Set the mtime of everything under `dir` (symlinks included) to `epoch`.
pub fn pin_mtimes(dir: &Path, epoch: u64) -> Result<(), FsError> {
    run(
        "find",
        "findutils",
        Command::new("find")
            .arg(dir)
            .args(["-exec", "touch", "-h", "-d"])
            .arg(format!("@{epoch}"))
            .args(["{}", "+"]),
    )
}

/// Create `out` holding a read-only EROFS image (lz4hc) of `dir`: every
/// file owned by root, every timestamp `epoch`, the given UUID.
pub fn erofs_from_dir(dir: &Path, out: &Path, uuid: Uuid, epoch: u64) -> Result<(), FsError> {
    let _ = std::fs::remove_file(out);
    run(
        "mkfs.erofs",
        "erofs-utils",
        Command::new("mkfs.erofs")
            .env("SOURCE_DATE_EPOCH", epoch.to_string())
            // 64 KiB physical clusters ("big pcluster", Linux >= 5.13):
            // the proxy system (MariaDB, Redis, the services) is 16 % smaller
            // than with the default 4 KiB, which keeps its image under 150 MiB.
            .args(["--quiet", "--all-root", "-zlz4hc", "-C65536"])
            .arg(format!("-T{epoch}"))
            .arg(format!("-U{uuid}"))
            .arg(out)
            .arg(dir),
    )
}

/// Create `out` holding a FAT32 filesystem (volume `serial`) with the
/// contents of `dir`.
pub fn fat_from_dir(
    dir: &Path,
    out: &Path,
    label: &str,
    serial: u32,
    size_bytes: u64,
    epoch: u64,
    fat32: bool,
) -> Result<(), FsError> {
    let _ = std::fs::remove_file(out);
    let f = std::fs::File::create(out).map_err(|source| FsError::Io {
        path: out.to_owned(),
        source,
    })?;
    f.set_len(size_bytes).map_err(|source| FsError::Io {
        path: out.to_owned(),
        source,
    })?;
    drop(f);
    run(
        "mkfs.fat",
        "dosfstools",
        Command::new("mkfs.fat")
            .env("SOURCE_DATE_EPOCH", epoch.to_string())
            // FAT32 for the ESP (UEFI), else whatever fits the size.
            .args(if fat32 { &["-F", "32"][..] } else { &[][..] })
            .args(["--invariant", "-n", label, "-i", &format!("{serial:08X}")])
            .arg(out),
    )?;
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| FsError::Io {
            path: dir.to_owned(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut cmd = Command::new("mcopy");
    cmd.env("SOURCE_DATE_EPOCH", epoch.to_string())
        .env("MTOOLS_SKIP_CHECK", "1")
        .args(["-s", "-m", "-Q", "-i"])
        .arg(out);
    cmd.args(&entries).arg("::/");
    run("mcopy", "mtools", &mut cmd)
}

/// Compress `src` into `out` with `gzip -n` (no name, no timestamp: the
/// same input gives the same bytes).
pub fn gzip(src: &Path, out: &Path) -> Result<(), FsError> {
    let f = std::fs::File::create(out).map_err(|source| FsError::Io {
        path: out.to_owned(),
        source,
    })?;
    run(
        "gzip",
        "gzip",
        Command::new("gzip")
            .args(["-n", "-6", "-c"])
            .arg(src)
            .stdout(f),
    )
}

/// The systemd EFI stub shipped by Debian's `systemd-boot-efi`.
pub const EFI_STUB: &str = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
/// systemd-boot, the ESP's boot manager choosing between slot A and B.
pub const SYSTEMD_BOOT: &str = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi";

/// Build a unified kernel image: stub + os-release + cmdline + kernel +
/// initrd, at the section addresses systemd-stub expects.
pub fn uki(
    epoch: u64,
    kernel: &Path,
    initrd: &Path,
    cmdline: &str,
    os_release: &str,
    work: &Path,
    out: &Path,
) -> Result<(), FsError> {
    let stub = Path::new(EFI_STUB);
    if !stub.exists() {
        return Err(FsError::NoStub(stub.to_owned()));
    }
    let w = |name: &str, data: &str| -> Result<PathBuf, FsError> {
        let p = work.join(name);
        std::fs::write(&p, data).map_err(|source| FsError::Io {
            path: p.clone(),
            source,
        })?;
        Ok(p)
    };
    let osrel = w("uki-os-release", os_release)?;
    let cmd = w("uki-cmdline", cmdline)?;
    let sec = |name: &str, file: &Path, vma: u64| -> Vec<std::ffi::OsString> {
        vec![
            "--add-section".into(),
            format!("{name}={}", file.display()).into(),
            "--change-section-vma".into(),
            format!("{name}=0x{vma:x}").into(),
        ]
    };
    let mut args = Vec::new();
    args.extend(sec(".osrel", &osrel, 0x20000));
    args.extend(sec(".cmdline", &cmd, 0x30000));
    args.extend(sec(".linux", kernel, 0x2000000));
    args.extend(sec(".initrd", initrd, 0x3000000));
    let _ = std::fs::remove_file(out);
    run(
        "faketime",
        "faketime and binutils",
        frozen("objcopy", epoch).args(args).arg(stub).arg(out),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00");
    }
}
