//! What goes into the initramfs and the system slot: a [`Tree`] of target
//! paths to sources, built from the cached Debian packages, the flexvisor
//! binaries and the image's own data files, then written either as a cpio
//! archive or as a staging directory for `mke2fs -d`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cpio;

/// Why a tree could not be staged.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} not found at {path}")]
    Missing { what: String, path: PathBuf },
    #[error("`{cmd}` failed: {detail}")]
    Tool { cmd: String, detail: String },
    #[error("{binary} needs {lib}, which no package of the image provides")]
    MissingLib { binary: String, lib: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StageError + '_ {
    move |source| StageError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One entry of a [`Tree`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir,
    /// A file copied from the build host (a cached package, a binary).
    Host {
        src: PathBuf,
        executable: bool,
    },
    Data {
        bytes: Vec<u8>,
        executable: bool,
    },
    Symlink(String),
    CharDev {
        major: u32,
        minor: u32,
    },
}

/// Target path (no leading `/`) to entry.
#[derive(Debug, Clone, Default)]
pub struct Tree {
    entries: BTreeMap<String, Entry>,
}

fn is_exec(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

impl Tree {
    pub fn new() -> Tree {
        Tree::default()
    }

    pub fn insert(&mut self, path: &str, e: Entry) {
        self.entries
            .insert(path.trim_start_matches('/').to_owned(), e);
    }

    pub fn dir(&mut self, path: &str) {
        self.insert(path, Entry::Dir);
    }

    pub fn data(&mut self, path: &str, bytes: impl Into<Vec<u8>>, executable: bool) {
        self.insert(
            path,
            Entry::Data {
                bytes: bytes.into(),
                executable,
            },
        );
    }

    pub fn symlink(&mut self, path: &str, target: &str) {
        self.insert(path, Entry::Symlink(target.to_owned()));
    }

    /// Copy a host file; it must exist.
    pub fn host(&mut self, path: &str, src: &Path, what: &str) -> Result<(), StageError> {
        if !src.is_file() {
            return Err(StageError::Missing {
                what: what.to_owned(),
                path: src.to_owned(),
            });
        }
        self.insert(
            path,
            Entry::Host {
                src: src.to_owned(),
                executable: is_exec(src),
            },
        );
        Ok(())
    }

    /// Copy every shared object (files and symlinks named `*.so*`) of `dir`
    /// into `target`.
    pub fn libs(&mut self, dir: &Path, target: &str) -> Result<(), StageError> {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return Ok(());
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.contains(".so") {
                continue;
            }
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).map_err(io(&p))?;
            let t = format!("{target}/{name}");
            if meta.file_type().is_symlink() {
                let to = std::fs::read_link(&p).map_err(io(&p))?;
                self.symlink(&t, &to.to_string_lossy());
            } else if meta.is_file() {
                self.host(&t, &p, "shared library")?;
            }
        }
        Ok(())
    }

    /// Busybox and a symlink per applet, as the binary itself lists them.
    pub fn busybox(&mut self, busybox: &Path) -> Result<(), StageError> {
        self.host("bin/busybox", busybox, "busybox (package busybox-static)")?;
        let out = Command::new(busybox)
            .arg("--list-full")
            .output()
            .map_err(io(busybox))?;
        if !out.status.success() {
            return Err(StageError::Tool {
                cmd: format!("{} --list-full", busybox.display()),
                detail: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        for applet in String::from_utf8_lossy(&out.stdout).lines() {
            let applet = applet.trim();
            if applet.is_empty() || applet == "bin/busybox" {
                continue;
            }
            let depth = applet.matches('/').count();
            self.symlink(applet, &format!("{}bin/busybox", "../".repeat(depth)));
        }
        Ok(())
    }

    /// Drop the shared libraries under `libdir` that no executable of the
    /// tree needs (`DT_NEEDED`, read with `objdump -p`, followed through
    /// libraries and symlinks). The dynamic loader is always kept.
    pub fn prune_libs(&mut self, libdir: &str) -> Result<(), StageError> {
        let prefix = format!("{}/", libdir.trim_matches('/'));
        let needed_of = |src: &Path| -> Result<Vec<String>, StageError> {
            let out = Command::new("objdump")
                .arg("-p")
                .arg(src)
                .output()
                .map_err(io(src))?;
            // Not an ELF file (a script): needs nothing.
            Ok(String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.trim().strip_prefix("NEEDED"))
                .map(|n| n.trim().to_owned())
                .collect())
        };
        let mut want: Vec<String> = Vec::new();
        let mut wanted_by = BTreeMap::new();
        for (path, e) in &self.entries {
            if let (
                false,
                Entry::Host {
                    src,
                    executable: true,
                },
            ) = (path.starts_with(&prefix), e)
            {
                for lib in needed_of(src)? {
                    wanted_by.entry(lib.clone()).or_insert_with(|| path.clone());
                    want.push(lib);
                }
            }
        }
        want.push("ld-linux-x86-64.so.2".into());
        let mut keep = std::collections::BTreeSet::new();
        while let Some(name) = want.pop() {
            if !keep.insert(name.clone()) {
                continue;
            }
            match self.entries.get(&format!("{prefix}{name}")) {
                Some(Entry::Symlink(t)) => want.push(t.rsplit('/').next().unwrap_or(t).to_owned()),
                Some(Entry::Host { src, .. }) => {
                    for lib in needed_of(src)? {
                        wanted_by.entry(lib.clone()).or_insert_with(|| name.clone());
                        want.push(lib);
                    }
                }
                _ => {
                    return Err(StageError::MissingLib {
                        binary: wanted_by.get(&name).cloned().unwrap_or_default(),
                        lib: name,
                    })
                }
            }
        }
        self.entries
            .retain(|path, _| match path.strip_prefix(&prefix) {
                Some(name) if !name.contains('/') => keep.contains(name),
                _ => true,
            });
        Ok(())
    }

    /// Total bytes of file contents.
    pub fn content_size(&self) -> u64 {
        self.entries
            .values()
            .map(|e| match e {
                Entry::Host { src, .. } => std::fs::metadata(src).map(|m| m.len()).unwrap_or(0),
                Entry::Data { bytes, .. } => bytes.len() as u64,
                _ => 0,
            })
            .sum()
    }

    /// A `newc` archive of the tree.
    pub fn to_cpio(&self, mtime: u64) -> Result<Vec<u8>, StageError> {
        let mut a = cpio::Archive::new();
        for (path, e) in &self.entries {
            let node = match e {
                Entry::Dir => cpio::Node::Dir,
                Entry::Host { src, executable } => cpio::Node::File {
                    data: std::fs::read(src).map_err(io(src))?,
                    executable: *executable,
                },
                Entry::Data { bytes, executable } => cpio::Node::File {
                    data: bytes.clone(),
                    executable: *executable,
                },
                Entry::Symlink(t) => cpio::Node::Symlink(t.clone()),
                Entry::CharDev { major, minor } => cpio::Node::CharDev {
                    major: *major,
                    minor: *minor,
                },
            };
            a.add(path, node);
        }
        Ok(a.to_bytes(mtime))
    }

    /// Write the tree under `root` (which must not exist yet). Device nodes
    /// are skipped: the system slot gets `/dev` from devtmpfs.
    pub fn write_dir(&self, root: &Path) -> Result<(), StageError> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(root).map_err(io(root))?;
        for (path, e) in &self.entries {
            let p = root.join(path);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            let _ = std::fs::remove_file(&p);
            let mode = |x: bool| std::fs::Permissions::from_mode(if x { 0o755 } else { 0o644 });
            match e {
                Entry::Dir => {
                    std::fs::create_dir_all(&p).map_err(io(&p))?;
                    std::fs::set_permissions(&p, mode(true)).map_err(io(&p))?;
                }
                Entry::Host { src, executable } => {
                    std::fs::copy(src, &p).map_err(io(&p))?;
                    std::fs::set_permissions(&p, mode(*executable)).map_err(io(&p))?;
                }
                Entry::Data { bytes, executable } => {
                    std::fs::write(&p, bytes).map_err(io(&p))?;
                    std::fs::set_permissions(&p, mode(*executable)).map_err(io(&p))?;
                }
                Entry::Symlink(t) => std::os::unix::fs::symlink(t, &p).map_err(io(&p))?,
                Entry::CharDev { .. } => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpio_and_dir_agree_on_contents() {
        let mut t = Tree::new();
        t.data("etc/flexvisor/x.toml", "a = 1\n", false);
        t.symlink("sbin/init", "../bin/busybox");
        t.insert("dev/console", Entry::CharDev { major: 5, minor: 1 });
        let root = std::env::temp_dir().join(format!("fv-stage-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        t.write_dir(&root).unwrap();
        assert_eq!(
            std::fs::read_to_string(root.join("etc/flexvisor/x.toml")).unwrap(),
            "a = 1\n"
        );
        assert_eq!(
            std::fs::read_link(root.join("sbin/init")).unwrap(),
            PathBuf::from("../bin/busybox")
        );
        assert!(!root.join("dev/console").exists());
        std::fs::remove_dir_all(&root).unwrap();
        let c = t.to_cpio(0).unwrap();
        assert!(c.windows(11).any(|w| w == b"dev/console"));
    }

    #[test]
    fn missing_host_file_is_named() {
        let mut t = Tree::new();
        let e = t
            .host(
                "sbin/flexvisor",
                Path::new("/nonexistent/flexvisor"),
                "flexvisor binary",
            )
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/flexvisor"), "{e}");
    }
}
