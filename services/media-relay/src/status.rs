//! Status output of `media-relay --status`: the relay's calls as JSON or as
//! a table, from ng `list` and `query` replies.

use crate::bencode::Value;

/// A bencode value as JSON (byte strings as UTF-8, lossy).
pub fn value_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Int(i) => serde_json::Value::from(*i),
        Value::Bytes(b) => serde_json::Value::from(String::from_utf8_lossy(b).into_owned()),
        Value::List(l) => serde_json::Value::Array(l.iter().map(value_json).collect()),
        Value::Dict(d) => serde_json::Value::Object(
            d.iter()
                .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), value_json(v)))
                .collect(),
        ),
    }
}

/// `{"calls": [...]}` from query dictionaries.
pub fn to_json(calls: &[Value]) -> serde_json::Value {
    serde_json::json!({ "calls": calls.iter().map(value_json).collect::<Vec<_>>() })
}

/// One line per stream: call, tag, kind, local port, peer, packets, bytes,
/// last packet.
pub fn table(calls: &[(String, Value)]) -> String {
    let mut out = format!(
        "{:<28} {:<14} {:<5} {:>6} {:<24} {:>10} {:>12} {:>11}\n",
        "CALL-ID", "TAG", "KIND", "PORT", "PEER", "PACKETS", "BYTES", "LAST"
    );
    for (id, q) in calls {
        let Some(tags) = q.get("tags").and_then(Value::as_dict) else {
            continue;
        };
        for (tag, t) in tags {
            let tag = String::from_utf8_lossy(tag);
            for m in t.get("medias").and_then(Value::as_list).unwrap_or(&[]) {
                for s in m.get("streams").and_then(Value::as_list).unwrap_or(&[]) {
                    let kind = s
                        .get("flags")
                        .and_then(Value::as_list)
                        .and_then(|f| f.first())
                        .and_then(Value::as_str)
                        .unwrap_or("?");
                    let ep = s.get("endpoint");
                    let peer = match (
                        ep.and_then(|e| e.get("address")).and_then(Value::as_str),
                        ep.and_then(|e| e.get("port")).and_then(Value::as_int),
                    ) {
                        (Some(a), Some(p)) => format!("{a}:{p}"),
                        _ => "-".into(),
                    };
                    let stat = |k| {
                        s.get("stats")
                            .and_then(|st| st.get(k))
                            .and_then(Value::as_int)
                            .unwrap_or(0)
                    };
                    out.push_str(&format!(
                        "{:<28} {:<14} {:<5} {:>6} {:<24} {:>10} {:>12} {:>11}\n",
                        id,
                        tag,
                        kind,
                        s.get("local port").and_then(Value::as_int).unwrap_or(0),
                        peer,
                        stat("packets"),
                        stat("bytes"),
                        s.get("last packet").and_then(Value::as_int).unwrap_or(0),
                    ));
                }
            }
        }
    }
    out
}
