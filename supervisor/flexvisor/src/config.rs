//! The whole configuration the supervisor runs: the node configuration
//! (optional outside the appliance) plus the service definitions, checked
//! together (every service the node lists is defined, dependencies exist,
//! no cycles). Loaded at boot and on reload; a configuration that fails
//! here is never applied.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chassis::NodeConfig;

use crate::graph::{Graph, GraphError};
use crate::service::spec::{self, LoadError, ServiceSpec};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read node configuration {}: {source}", path.display())]
    NodeRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    NodeParse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}: node configuration lists service `{service}` but {} does not exist", node.display(), dir.join(format!("{service}.toml")).display())]
    Undefined {
        node: PathBuf,
        dir: PathBuf,
        service: String,
    },
    #[error(transparent)]
    Services(#[from] LoadError),
    #[error(transparent)]
    Graph(#[from] GraphError),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub node: Option<NodeConfig>,
    /// The services supervised (definitions of everything selected).
    pub specs: BTreeMap<String, ServiceSpec>,
    pub graph: Graph,
    /// Run only while master.
    pub active: BTreeSet<String>,
}

pub fn read_node(path: &Path) -> Result<NodeConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::NodeRead {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| {
        let (line, column) = e.span().map_or((1, 1), |s| spec::locate(&text, s.start));
        ConfigError::NodeParse {
            path: path.to_owned(),
            line,
            column,
            message: e.message().to_owned(),
        }
    })
}

/// Load and check everything. Without a node configuration every defined
/// service runs; with one, the node's `services` and `active_services`, the
/// `boot = true` definitions, and whatever they depend on.
pub fn load(node_path: Option<&Path>, services_dir: &Path) -> Result<Config, ConfigError> {
    let node = node_path.map(read_node).transpose()?;
    let all = spec::load_dir(services_dir)?;
    let (specs, active) = match &node {
        None => (all, BTreeSet::new()),
        Some(n) => {
            for s in n.services.iter().chain(&n.active_services) {
                if !all.contains_key(s) {
                    return Err(ConfigError::Undefined {
                        node: node_path.map(Path::to_owned).unwrap_or_default(),
                        dir: services_dir.to_owned(),
                        service: s.clone(),
                    });
                }
            }
            // `boot = true` definitions run on every node, whatever its
            // role lists; the node cannot opt out of them.
            let boot: Vec<&str> = all
                .values()
                .filter(|s| s.boot)
                .map(|s| s.name.as_str())
                .collect();
            // Resolve dependencies over all definitions, then keep the
            // closure of what the node asks for.
            let full = Graph::build(&all)?;
            let keep = full.closure(
                n.services
                    .iter()
                    .chain(&n.active_services)
                    .map(String::as_str)
                    .chain(boot.iter().copied()),
            );
            // Services outside `active_services` (and what they need) run
            // always, and so do boot services even if the role lists them
            // as active-only; the rest of `active_services` only while
            // master.
            let always = full.closure(
                n.services
                    .iter()
                    .filter(|s| !n.active_services.contains(s))
                    .map(String::as_str)
                    .chain(boot.iter().copied()),
            );
            let specs = all.into_iter().filter(|(k, _)| keep.contains(k)).collect();
            let active = n
                .active_services
                .iter()
                .filter(|s| !always.contains(*s))
                .cloned()
                .collect();
            (specs, active)
        }
    };
    let graph = Graph::build(&specs)?;
    Ok(Config {
        node,
        specs,
        graph,
        active,
    })
}
