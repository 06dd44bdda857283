//! Kernel module selection: the closure of a set of module names under the
//! `depends=` field of each module's `.modinfo` section, in load order.
//!
//! Debian's kernel package ships no `modules.dep` (depmod runs in its
//! postinst), so the dependencies are read from the `.ko` files themselves.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Why a module set could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum KmodError {
    #[error("cannot read kernel modules under {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("kernel module `{name}` (wanted by {wanted_by}) is not in {dir} nor built in")]
    Missing {
        name: String,
        wanted_by: String,
        dir: PathBuf,
    },
}

/// The modules of one kernel version: name (underscored) to relative path.
#[derive(Debug, Clone)]
pub struct Tree {
    dir: PathBuf,
    modules: BTreeMap<String, PathBuf>,
    builtin: BTreeSet<String>,
}

fn canon(name: &str) -> String {
    name.replace('-', "_")
}

fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, PathBuf>) -> Result<(), KmodError> {
    let rd = std::fs::read_dir(dir).map_err(|source| KmodError::Io {
        path: dir.to_owned(),
        source,
    })?;
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, base, out)?;
        } else if let Some(stem) = p
            .file_name()
            .and_then(|f| f.to_str())
            .and_then(|f| f.strip_suffix(".ko"))
        {
            let rel = p.strip_prefix(base).unwrap_or(&p).to_owned();
            out.insert(canon(stem), rel);
        }
    }
    Ok(())
}

/// Parse `depends=` out of a module file's NUL-separated modinfo strings.
pub fn depends_of(ko: &[u8]) -> Vec<String> {
    let key = b"\0depends=";
    let Some(pos) = ko.windows(key.len()).position(|w| w == key) else {
        return Vec::new();
    };
    let rest = &ko[pos + key.len()..];
    let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end])
        .split(',')
        .filter(|s| !s.is_empty())
        .map(canon)
        .collect()
}

impl Tree {
    /// Index `dir` (`lib/modules/<version>`).
    pub fn open(dir: &Path) -> Result<Tree, KmodError> {
        let mut modules = BTreeMap::new();
        walk(&dir.join("kernel"), dir, &mut modules)?;
        let builtin = std::fs::read_to_string(dir.join("modules.builtin"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.rsplit('/').next())
            .filter_map(|f| f.strip_suffix(".ko"))
            .map(canon)
            .collect();
        Ok(Tree {
            dir: dir.to_owned(),
            modules,
            builtin,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `wanted` and their dependencies, dependencies first; built-in
    /// modules are skipped. Paths are relative to [`Tree::dir`].
    pub fn closure(&self, wanted: &[&str]) -> Result<Vec<PathBuf>, KmodError> {
        let mut order = Vec::new();
        let mut seen = BTreeSet::new();
        for w in wanted {
            self.visit(&canon(w), "the image's module list", &mut seen, &mut order)?;
        }
        Ok(order)
    }

    fn visit(
        &self,
        name: &str,
        wanted_by: &str,
        seen: &mut BTreeSet<String>,
        order: &mut Vec<PathBuf>,
    ) -> Result<(), KmodError> {
        if !seen.insert(name.to_owned()) || self.builtin.contains(name) {
            return Ok(());
        }
        let rel = self.modules.get(name).ok_or_else(|| KmodError::Missing {
            name: name.to_owned(),
            wanted_by: wanted_by.to_owned(),
            dir: self.dir.clone(),
        })?;
        let path = self.dir.join(rel);
        let bytes = std::fs::read(&path).map_err(|source| KmodError::Io { path, source })?;
        for dep in depends_of(&bytes) {
            self.visit(&dep, name, seen, order)?;
        }
        order.push(rel.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_parsed_from_modinfo_strings() {
        let blob = b"\x7fELF...\0license=GPL\0depends=md-mod,libcrc32c\0name=raid1\0";
        assert_eq!(depends_of(blob), ["md_mod", "libcrc32c"]);
        assert!(depends_of(b"\0depends=\0").is_empty());
        assert!(depends_of(b"nothing").is_empty());
    }
}
