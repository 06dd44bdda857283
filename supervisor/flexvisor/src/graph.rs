//! The dependency graph of services: hard `requires`, soft `wants`.
//!
//! Both kinds order start-up (a dependent starts once its dependencies are
//! ready) and shutdown (a dependency stops once its dependents are down);
//! only `requires` blocks a dependent when the dependency failed. Cycles are
//! rejected with the cycle spelled out. Pure: no processes here.

use std::collections::{BTreeMap, BTreeSet};

use crate::service::ServiceSpec;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("{file}: service `{service}` requires `{missing}`, which has no definition in the services directory")]
    Missing {
        service: String,
        file: String,
        missing: String,
    },
    #[error("dependency cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
}

/// One edge: `hard` for requires, soft for wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dep<'a> {
    pub name: &'a str,
    pub hard: bool,
}

/// Validated dependency graph over a set of services.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// name → (dependency, hard)
    deps: BTreeMap<String, Vec<(String, bool)>>,
    /// name → dependents
    rdeps: BTreeMap<String, BTreeSet<String>>,
    order: Vec<String>,
}

impl Graph {
    /// Build from definitions. A `wants` naming an unknown service is
    /// dropped (soft); an unknown `requires` is an error.
    pub fn build(specs: &BTreeMap<String, ServiceSpec>) -> Result<Self, GraphError> {
        let mut deps: BTreeMap<String, Vec<(String, bool)>> = BTreeMap::new();
        let mut rdeps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (name, s) in specs {
            let mut list = Vec::new();
            for r in &s.requires {
                if !specs.contains_key(r) {
                    return Err(GraphError::Missing {
                        service: name.clone(),
                        file: s.file.display().to_string(),
                        missing: r.clone(),
                    });
                }
                list.push((r.clone(), true));
            }
            for w in &s.wants {
                if specs.contains_key(w) && !s.requires.contains(w) {
                    list.push((w.clone(), false));
                }
            }
            for (d, _) in &list {
                rdeps.entry(d.clone()).or_default().insert(name.clone());
            }
            rdeps.entry(name.clone()).or_default();
            deps.insert(name.clone(), list);
        }
        let order = topo(&deps)?;
        Ok(Self { deps, rdeps, order })
    }

    /// Dependencies first.
    pub fn start_order(&self) -> &[String] {
        &self.order
    }

    /// Dependents first.
    pub fn stop_order(&self) -> impl Iterator<Item = &String> {
        self.order.iter().rev()
    }

    pub fn deps(&self, name: &str) -> impl Iterator<Item = Dep<'_>> {
        self.deps
            .get(name)
            .into_iter()
            .flatten()
            .map(|(n, h)| Dep { name: n, hard: *h })
    }

    pub fn dependents(&self, name: &str) -> impl Iterator<Item = &String> {
        self.rdeps.get(name).into_iter().flatten()
    }

    /// `roots` and everything they require or want, transitively.
    pub fn closure<'a>(&'a self, roots: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<&str> = roots.into_iter().collect();
        while let Some(n) = stack.pop() {
            if seen.insert(n.to_owned()) {
                stack.extend(self.deps(n).map(|d| d.name));
            }
        }
        seen
    }

    /// Services that hard-require `name`, transitively.
    pub fn hard_dependents(&self, name: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![name.to_owned()];
        while let Some(n) = stack.pop() {
            for d in self.dependents(&n) {
                let hard = self.deps(d).any(|x| x.name == n && x.hard);
                if hard && seen.insert(d.clone()) {
                    stack.push(d.clone());
                }
            }
        }
        seen
    }
}

fn topo(deps: &BTreeMap<String, Vec<(String, bool)>>) -> Result<Vec<String>, GraphError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    let mut mark: BTreeMap<&str, Mark> = BTreeMap::new();
    let mut order = Vec::new();
    for root in deps.keys() {
        if mark.contains_key(root.as_str()) {
            continue;
        }
        // Iterative DFS: (node, next edge index); `path` is the grey chain.
        let mut stack: Vec<(&str, usize)> = vec![(root, 0)];
        mark.insert(root, Mark::Visiting);
        while let Some((node, i)) = stack.pop() {
            let edges = deps.get(node).map(Vec::as_slice).unwrap_or(&[]);
            if let Some((next, _)) = edges.get(i) {
                stack.push((node, i + 1));
                match mark.get(next.as_str()) {
                    Some(Mark::Visiting) => {
                        let start = stack.iter().position(|(n, _)| *n == next).unwrap_or(0);
                        let mut cycle: Vec<String> = stack[start..]
                            .iter()
                            .map(|(n, _)| (*n).to_owned())
                            .collect();
                        cycle.push(next.clone());
                        return Err(GraphError::Cycle(cycle));
                    }
                    Some(Mark::Done) => {}
                    None => {
                        mark.insert(next, Mark::Visiting);
                        stack.push((next, 0));
                    }
                }
            } else {
                mark.insert(node, Mark::Done);
                order.push(node.to_owned());
            }
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn specs(defs: &[(&str, &[&str], &[&str])]) -> BTreeMap<String, ServiceSpec> {
        defs.iter()
            .map(|(n, req, wants)| {
                let text = format!(
                    "command = \"/bin/true\"\nrequires = {:?}\nwants = {:?}\n",
                    req, wants
                );
                let s = crate::service::spec::parse(n, Path::new("x.toml"), &text).unwrap();
                ((*n).to_owned(), s)
            })
            .collect()
    }

    #[test]
    fn orders_dependencies_first() {
        let g = Graph::build(&specs(&[
            ("web", &["db"], &["log"]),
            ("db", &[], &["log"]),
            ("log", &[], &[]),
        ]))
        .unwrap();
        let o = g.start_order();
        let pos = |n: &str| o.iter().position(|x| x == n).unwrap();
        assert!(pos("log") < pos("db") && pos("db") < pos("web"));
        assert_eq!(g.stop_order().next().map(String::as_str), Some("web"));
    }

    #[test]
    fn cycle_is_named() {
        let e = Graph::build(&specs(&[
            ("a", &["b"], &[]),
            ("b", &[], &["c"]),
            ("c", &["a"], &[]),
        ]))
        .unwrap_err();
        assert_eq!(e.to_string(), "dependency cycle: a -> b -> c -> a");
    }

    #[test]
    fn missing_requirement_is_an_error_missing_want_is_not() {
        assert!(matches!(
            Graph::build(&specs(&[("a", &["nope"], &[])])),
            Err(GraphError::Missing { .. })
        ));
        assert!(Graph::build(&specs(&[("a", &[], &["nope"])])).is_ok());
    }

    #[test]
    fn hard_dependents_are_transitive() {
        let g = Graph::build(&specs(&[
            ("a", &[], &[]),
            ("b", &["a"], &[]),
            ("c", &["b"], &[]),
            ("d", &[], &["a"]),
        ]))
        .unwrap();
        let h = g.hard_dependents("a");
        assert!(h.contains("b") && h.contains("c") && !h.contains("d"));
    }

    proptest::proptest! {
        /// Random DAGs (edges only to lower indices) always sort with every
        /// dependency before its dependent.
        #[test]
        fn topo_respects_edges(edges in proptest::collection::vec((0usize..12, 0usize..12), 0..40)) {
            let mut deps: BTreeMap<String, Vec<(String, bool)>> =
                (0..12).map(|i| (format!("s{i:02}"), vec![])).collect();
            for (a, b) in edges {
                if a > b {
                    deps.get_mut(&format!("s{a:02}")).unwrap().push((format!("s{b:02}"), true));
                }
            }
            let order = topo(&deps).unwrap();
            for (n, ds) in &deps {
                let pn = order.iter().position(|x| x == n).unwrap();
                for (d, _) in ds {
                    let pd = order.iter().position(|x| x == d).unwrap();
                    proptest::prop_assert!(pd < pn);
                }
            }
        }
    }
}
