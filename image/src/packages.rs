//! The Debian package cache: `apt-get download` into a cache directory,
//! `dpkg-deb -x` into an extraction directory beside it, both reused on
//! the next build (the "warm cache").
//!
//! Only the Debian mirrors configured in apt are contacted, and only for a
//! package that is not in the cache yet.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why a package could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("cannot create or read cache directory {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run `{tool}` (is it installed? package: {package}): {source}")]
    Tool {
        tool: String,
        package: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "package `{name}` is not in the cache {dir} and `apt-get download {name}` failed: {stderr}"
    )]
    Download {
        name: String,
        dir: PathBuf,
        stderr: String,
    },
    #[error("cannot resolve `{name}` to a real package: {detail}")]
    Resolve { name: String, detail: String },
    #[error("`dpkg-deb -x {deb}` failed: {stderr}")]
    Extract { deb: PathBuf, stderr: String },
}

/// A directory of downloaded `.deb` files and their extracted trees.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

/// One package in the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    /// The `.deb` file name: name, version and architecture.
    pub deb: String,
    /// Where its files were extracted.
    pub tree: PathBuf,
}

impl Cache {
    /// The cache at `root` (`root/apt/*.deb`, `root/extract/<deb>/`).
    pub fn new(root: impl Into<PathBuf>) -> Cache {
        Cache { root: root.into() }
    }

    /// `$FLEXVISOR_CACHE`, else `$XDG_CACHE_HOME/flexvisor`, else
    /// `/var/cache/flexvisor` for root, else `~/.cache/flexvisor`.
    pub fn default_root() -> PathBuf {
        if let Some(p) = std::env::var_os("FLEXVISOR_CACHE") {
            return PathBuf::from(p);
        }
        if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
            return PathBuf::from(p).join("flexvisor");
        }
        // Root builds (CI) share one system-wide cache.
        let is_root = std::fs::metadata("/proc/self")
            .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
            .unwrap_or(false);
        if is_root {
            return PathBuf::from("/var/cache/flexvisor");
        }
        std::env::var_os("HOME")
            .map(|h| PathBuf::from(h).join(".cache/flexvisor"))
            .unwrap_or_else(|| PathBuf::from("/var/cache/flexvisor"))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn mkdir(&self, p: &Path) -> Result<(), PackageError> {
        std::fs::create_dir_all(p).map_err(|source| PackageError::Io {
            path: p.to_owned(),
            source,
        })
    }

    /// The cached `.deb` for `name`, the highest-sorting if several.
    fn cached_deb(&self, name: &str) -> Result<Option<String>, PackageError> {
        let dir = self.root.join("apt");
        let prefix = format!("{name}_");
        let rd = std::fs::read_dir(&dir).map_err(|source| PackageError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut found: Vec<String> = rd
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|f| f.starts_with(&prefix) && f.ends_with(".deb"))
            .collect();
        found.sort();
        Ok(found.pop())
    }

    /// Resolve a metapackage such as `linux-image-amd64` to the package it
    /// depends on whose name starts with `prefix` (`linux-image-6.1.0-…`).
    /// A cached resolution is reused so a warm build needs no apt metadata.
    pub fn resolve_meta(&self, meta: &str, prefix: &str) -> Result<String, PackageError> {
        let memo = self.root.join("apt").join(format!("{meta}.resolved"));
        if let Ok(s) = std::fs::read_to_string(&memo) {
            let s = s.trim();
            if !s.is_empty() {
                return Ok(s.to_owned());
            }
        }
        self.mkdir(&self.root.join("apt"))?;
        let out = Command::new("apt-cache")
            .args(["depends", meta])
            .output()
            .map_err(|source| PackageError::Tool {
                tool: "apt-cache".into(),
                package: "apt",
                source,
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        let real = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Depends: "))
            .find(|d| d.starts_with(prefix))
            .map(str::to_owned)
            .ok_or_else(|| PackageError::Resolve {
                name: meta.into(),
                detail: format!(
                    "`apt-cache depends {meta}` lists no dependency starting with `{prefix}` ({})",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            })?;
        std::fs::write(&memo, format!("{real}\n"))
            .map_err(|source| PackageError::Io { path: memo, source })?;
        Ok(real)
    }

    /// Every real package `names` depend on (recursively, Depends and
    /// PreDepends only), `names` included, sorted. Memoized in the cache
    /// so a warm build needs no apt metadata.
    pub fn closure(&self, names: &[&str]) -> Result<Vec<String>, PackageError> {
        let memo = self
            .root
            .join("apt")
            .join(format!("{}.closure", names.join("+")));
        if let Ok(s) = std::fs::read_to_string(&memo) {
            return Ok(s.lines().map(str::to_owned).collect());
        }
        self.mkdir(&self.root.join("apt"))?;
        let out = Command::new("apt-cache")
            .args([
                "depends",
                "--recurse",
                "--no-recommends",
                "--no-suggests",
                "--no-conflicts",
                "--no-breaks",
                "--no-replaces",
                "--no-enhances",
            ])
            .args(names)
            .output()
            .map_err(|source| PackageError::Tool {
                tool: "apt-cache".into(),
                package: "apt",
                source,
            })?;
        if !out.status.success() {
            return Err(PackageError::Resolve {
                name: names.join(" "),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
            });
        }
        let mut all: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            // Top-level lines are packages; `<virtual>` ones have no file.
            // libelogind0 is the alternative to libsystemd0, not wanted too.
            .filter(|l| !l.starts_with(' ') && !l.starts_with('<') && *l != "libelogind0")
            .map(str::to_owned)
            .collect();
        all.sort();
        all.dedup();
        std::fs::write(&memo, all.join("\n"))
            .map_err(|source| PackageError::Io { path: memo, source })?;
        Ok(all)
    }

    /// Make sure `name` is downloaded and extracted; return where.
    pub fn get(&self, name: &str) -> Result<Package, PackageError> {
        let apt = self.root.join("apt");
        self.mkdir(&apt)?;
        let deb = match self.cached_deb(name)? {
            Some(d) => d,
            None => {
                // Downloaded into a directory of this process, then moved
                // in: a build running beside this one never sees half a
                // file (and both may download: the rename is atomic).
                let part = apt.join(format!(".part-{}-{name}", unique()));
                let _ = std::fs::remove_dir_all(&part);
                self.mkdir(&part)?;
                let out = Command::new("apt-get")
                    .args(["download", "-q", name])
                    .current_dir(&part)
                    .output()
                    .map_err(|source| PackageError::Tool {
                        tool: "apt-get".into(),
                        package: "apt",
                        source,
                    });
                let moved = out.as_ref().ok().filter(|o| o.status.success()).map(|_| {
                    std::fs::read_dir(&part)
                        .into_iter()
                        .flatten()
                        .filter_map(|e| e.ok())
                        .map(|e| e.file_name())
                        .filter(|f| f.to_string_lossy().ends_with(".deb"))
                        .try_for_each(|f| std::fs::rename(part.join(&f), apt.join(&f)))
                });
                let _ = std::fs::remove_dir_all(&part);
                let out = out?;
                if let Some(Err(source)) = moved {
                    return Err(PackageError::Io { path: apt, source });
                }
                match self.cached_deb(name)? {
                    Some(d) if out.status.success() => d,
                    _ => {
                        return Err(PackageError::Download {
                            name: name.into(),
                            dir: apt,
                            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                        })
                    }
                }
            }
        };
        let tree = self.root.join("extract").join(deb.trim_end_matches(".deb"));
        if !tree.is_dir() {
            let tmp = self
                .root
                .join("extract")
                .join(format!(".tmp-{}-{}", unique(), name));
            let _ = std::fs::remove_dir_all(&tmp);
            self.mkdir(&tmp)?;
            let out = Command::new("dpkg-deb")
                .arg("-x")
                .arg(apt.join(&deb))
                .arg(&tmp)
                .output()
                .map_err(|source| PackageError::Tool {
                    tool: "dpkg-deb".into(),
                    package: "dpkg",
                    source,
                })?;
            if !out.status.success() {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(PackageError::Extract {
                    deb: apt.join(&deb),
                    stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                });
            }
            if let Err(source) = std::fs::rename(&tmp, &tree) {
                let _ = std::fs::remove_dir_all(&tmp);
                // A build beside this one extracted the same package first:
                // its tree is as good as ours.
                if !tree.is_dir() {
                    return Err(PackageError::Io {
                        path: tree.clone(),
                        source,
                    });
                }
            }
        }
        Ok(Package {
            name: name.into(),
            deb,
            tree,
        })
    }
}

/// A name part no other build (process or thread) uses at the same time.
fn unique() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{}.{n}", std::process::id())
}
