//! Reload: the difference between the running and a newly loaded
//! configuration. Pure; the supervisor applies it (start added, stop
//! removed, restart changed) only after the new configuration validated.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::service::ServiceSpec;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

pub fn diff(old: &BTreeMap<String, ServiceSpec>, new: &BTreeMap<String, ServiceSpec>) -> Diff {
    let mut d = Diff::default();
    for (name, spec) in new {
        match old.get(name) {
            None => d.added.push(name.clone()),
            Some(o) if o != spec => d.changed.push(name.clone()),
            Some(_) => {}
        }
    }
    d.removed = old
        .keys()
        .filter(|n| !new.contains_key(*n))
        .cloned()
        .collect();
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn s(name: &str, arg: &str) -> (String, ServiceSpec) {
        let text = format!("command = \"/bin/sleep\"\nargs = [\"{arg}\"]\n");
        (
            name.to_owned(),
            crate::service::spec::parse(name, Path::new("x.toml"), &text).unwrap(),
        )
    }

    #[test]
    fn finds_added_removed_changed() {
        let old: BTreeMap<_, _> = [s("a", "1"), s("b", "1"), s("c", "1")].into();
        let new: BTreeMap<_, _> = [s("a", "1"), s("b", "2"), s("d", "1")].into();
        let d = diff(&old, &new);
        assert_eq!(d.added, vec!["d"]);
        assert_eq!(d.removed, vec!["c"]);
        assert_eq!(d.changed, vec!["b"]);
    }
}
