//! A `newc` cpio archive writer for the initramfs (kernel
//! `Documentation/driver-api/early-userspace/buffer-format.rst`), pure and
//! deterministic: entries sorted by path, inode numbers assigned in that
//! order, one timestamp for all, owner root.
//!
//! Writing the archive ourselves lets an unprivileged build include device
//! nodes (`/dev/console`) that `mknod` would refuse.

use std::collections::BTreeMap;

/// What an archive entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir,
    File { data: Vec<u8>, executable: bool },
    Symlink(String),
    CharDev { major: u32, minor: u32 },
}

/// An archive under construction: path (no leading `/`) to node.
#[derive(Debug, Default, Clone)]
pub struct Archive {
    entries: BTreeMap<String, Node>,
}

impl Archive {
    pub fn new() -> Archive {
        Archive::default()
    }

    /// Add `node` at `path`, creating missing parent directories.
    pub fn add(&mut self, path: &str, node: Node) {
        let path = path.trim_start_matches('/').to_owned();
        let mut parent = String::new();
        for comp in path
            .split('/')
            .collect::<Vec<_>>()
            .iter()
            .rev()
            .skip(1)
            .rev()
        {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(comp);
            self.entries.entry(parent.clone()).or_insert(Node::Dir);
        }
        self.entries.insert(path, node);
    }

    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(path.trim_start_matches('/'))
    }

    /// Serialize with every mtime set to `mtime`.
    pub fn to_bytes(&self, mtime: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for (ino, (path, node)) in self.entries.iter().enumerate() {
            let (mode, data, rdev): (u32, &[u8], (u32, u32)) = match node {
                Node::Dir => (0o040_755, &[], (0, 0)),
                Node::File { data, executable } => (
                    if *executable { 0o100_755 } else { 0o100_644 },
                    data,
                    (0, 0),
                ),
                Node::Symlink(target) => (0o120_777, target.as_bytes(), (0, 0)),
                Node::CharDev { major, minor } => (0o020_600, &[], (*major, *minor)),
            };
            let nlink = if matches!(node, Node::Dir) { 2 } else { 1 };
            header(
                &mut out,
                ino as u32 + 1,
                mode,
                nlink,
                mtime,
                data.len(),
                rdev,
                path,
            );
            out.extend_from_slice(data);
            pad4(&mut out);
        }
        header(&mut out, 0, 0, 1, 0, 0, (0, 0), "TRAILER!!!");
        // The kernel accepts any length; pad to 512 as cpio(1) does.
        while !out.len().is_multiple_of(512) {
            out.push(0);
        }
        out
    }
}

#[allow(clippy::too_many_arguments)]
fn header(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    nlink: u32,
    mtime: u64,
    size: usize,
    rdev: (u32, u32),
    name: &str,
) {
    let fields = [
        ino,
        mode,
        0,
        0,
        nlink,
        mtime as u32,
        size as u32,
        0,
        0,
        rdev.0,
        rdev.1,
        name.len() as u32 + 1,
        0,
    ];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_created_and_sorted() {
        let mut a = Archive::new();
        a.add("/bin/sh", Node::Symlink("busybox".into()));
        a.add(
            "init",
            Node::File {
                data: b"x".to_vec(),
                executable: true,
            },
        );
        assert!(a.contains("bin"));
        let bytes = a.to_bytes(0);
        let text = String::from_utf8_lossy(&bytes);
        let bin = text.find("bin\0").unwrap();
        let sh = text.find("bin/sh\0").unwrap();
        let init = text.find("init\0").unwrap();
        assert!(bin < sh && sh < init);
        assert!(text.contains("TRAILER!!!"));
        assert_eq!(bytes.len() % 512, 0);
    }

    #[test]
    fn same_entries_any_order_same_bytes() {
        let mut a = Archive::new();
        a.add("b", Node::Dir);
        a.add("a", Node::CharDev { major: 5, minor: 1 });
        let mut b = Archive::new();
        b.add("a", Node::CharDev { major: 5, minor: 1 });
        b.add("b", Node::Dir);
        assert_eq!(a.to_bytes(7), b.to_bytes(7));
    }

    #[test]
    fn host_cpio_lists_what_we_wrote() {
        let mut a = Archive::new();
        a.add("dev/console", Node::CharDev { major: 5, minor: 1 });
        a.add(
            "etc/x",
            Node::File {
                data: b"hello".to_vec(),
                executable: false,
            },
        );
        let dir = std::env::temp_dir().join(format!("fv-cpio-{}", std::process::id()));
        std::fs::write(&dir, a.to_bytes(0)).unwrap();
        let out = std::process::Command::new("cpio")
            .args(["-it", "-F"])
            .arg(&dir)
            .output()
            .expect("cpio(1) must be installed (package cpio)");
        std::fs::remove_file(&dir).unwrap();
        let list = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            list.lines().collect::<Vec<_>>(),
            ["dev", "dev/console", "etc", "etc/x"]
        );
    }
}
