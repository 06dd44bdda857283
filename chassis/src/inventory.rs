//! The Ansible dynamic inventory of a deployment (`--list` form).
//!
//! Groups: `all`, one per role (`web`, `db`, `lb`, `proxy`), one per pair
//! (`pair_proxy2`), one per chassis (`chassis_chassis1`). Every host's
//! `hostvars` carry its resolved [`crate::node::NodeConfig`] under
//! `flexvisor_node`, so playbooks read the same data the image bakes in.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use crate::model::Profile;
use crate::node::{self, ResolveError};

/// The inventory as `ansible-inventory --list` expects it.
pub fn inventory(p: &Profile) -> Result<Value, ResolveError> {
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut hostvars = Map::new();
    for (chassis, bay) in node::bays(p) {
        let n = node::resolve(p, bay, Some(chassis))?;
        for g in [
            n.role.to_string(),
            format!("pair_{}", n.pair.name),
            format!("chassis_{}", n.chassis),
        ] {
            groups.entry(g).or_default().push(n.hostname.clone());
        }
        let mgmt = n
            .network
            .addresses
            .iter()
            .find(|a| a.network == "management")
            .map(|a| a.address.to_string());
        hostvars.insert(
            n.hostname.clone(),
            json!({
                "ansible_host": mgmt,
                "flexvisor_bay": n.bay,
                "flexvisor_chassis": n.chassis,
                "flexvisor_role": n.role,
                "flexvisor_pair": n.pair.name,
                "flexvisor_node": n,
            }),
        );
    }
    let mut out = Map::new();
    let all_children: Vec<&String> = groups.keys().collect();
    out.insert(
        "all".into(),
        json!({ "children": all_children, "vars": { "flexvisor_deployment": p.name } }),
    );
    for (g, hosts) in &groups {
        out.insert(g.clone(), json!({ "hosts": hosts }));
    }
    out.insert("_meta".into(), json!({ "hostvars": hostvars }));
    Ok(Value::Object(out))
}
