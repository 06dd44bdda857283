//! Parsing one line of the sip-proxy accounting spool into the proxy's own
//! [`Event`] type, with errors that name the offending field.
//!
//! The spool writer (`sip_proxy::spool`) serialises `Event` with serde; we
//! read through a JSON value first so that a bad line is reported as "field
//! `time_ms`: expected an unsigned integer" rather than a bare column
//! number. Unknown fields are ignored (a newer proxy may add some).

use serde_json::{Map, Value};
pub use sip_proxy::spool::{Event, EventKind};

/// Why a spool line was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// Not JSON at all (or not an object).
    #[error("not a JSON object: {0}")]
    Syntax(String),
    /// A field is missing or has the wrong type or value.
    #[error("field `{field}`: {reason}")]
    Field { field: &'static str, reason: String },
    /// The last line of a closed file has no trailing newline: the proxy
    /// crashed while writing it, so the event was never acknowledged.
    #[error("torn line (no trailing newline at end of closed file)")]
    Torn,
}

impl LineError {
    /// The field named by the error, if any (for the quarantine record).
    pub fn field(&self) -> Option<&'static str> {
        match self {
            LineError::Field { field, .. } => Some(field),
            _ => None,
        }
    }
}

fn field_err(field: &'static str, reason: impl Into<String>) -> LineError {
    LineError::Field {
        field,
        reason: reason.into(),
    }
}

fn string(
    obj: &Map<String, Value>,
    field: &'static str,
    non_empty: bool,
) -> Result<String, LineError> {
    match obj.get(field) {
        None => Err(field_err(field, "missing")),
        Some(Value::String(s)) if non_empty && s.trim().is_empty() => {
            Err(field_err(field, "must not be empty"))
        }
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(field_err(field, format!("expected a string, got {other}"))),
    }
}

fn opt_u64(obj: &Map<String, Value>, field: &'static str) -> Result<Option<u64>, LineError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            field_err(
                field,
                format!("expected an unsigned integer or null, got {v}"),
            )
        }),
    }
}

/// Parses one spool line (without its trailing newline).
pub fn parse_line(line: &str) -> Result<Event, LineError> {
    // Fast path: the proxy's own serialisation, checked for the values
    // serde accepts but we do not. Anything else takes the slow path,
    // which finds the field to blame.
    if let Ok(ev) = serde_json::from_str::<Event>(line) {
        if ev.time_ms != 0 && !ev.call_id.trim().is_empty() && !ev.callee.trim().is_empty() {
            return Ok(ev);
        }
    }
    parse_value(line)
}

fn parse_value(line: &str) -> Result<Event, LineError> {
    let value: Value = serde_json::from_str(line).map_err(|e| LineError::Syntax(e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(LineError::Syntax(format!(
            "expected an object, got {}",
            kind_of(&value)
        )));
    };
    let kind = match obj.get("kind") {
        Some(Value::String(s)) if s == "start" => EventKind::Start,
        Some(Value::String(s)) if s == "stop" => EventKind::Stop,
        Some(v) => {
            return Err(field_err(
                "kind",
                format!("expected \"start\" or \"stop\", got {v}"),
            ))
        }
        None => return Err(field_err("kind", "missing")),
    };
    let time_ms = match obj.get("time_ms") {
        None => return Err(field_err("time_ms", "missing")),
        Some(v) => match v.as_u64() {
            Some(0) => {
                return Err(field_err(
                    "time_ms",
                    "must be a Unix time in milliseconds, got 0",
                ))
            }
            Some(t) => t,
            None => {
                return Err(field_err(
                    "time_ms",
                    format!("expected an unsigned integer (Unix ms), got {v}"),
                ))
            }
        },
    };
    let reason = match obj.get("reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(v) => return Err(field_err("reason", format!("expected a string, got {v}"))),
    };
    Ok(Event {
        kind,
        call_id: string(&obj, "call_id", true)?,
        time_ms,
        from_tag: string(&obj, "from_tag", false)?,
        to_tag: string(&obj, "to_tag", false)?,
        caller: string(&obj, "caller", false)?,
        callee: string(&obj, "callee", true)?,
        caller_customer: opt_u64(&obj, "caller_customer")?,
        callee_customer: opt_u64(&obj, "callee_customer")?,
        node: string(&obj, "node", false)?,
        reason,
        answer_ms: opt_u64(&obj, "answer_ms")?,
    })
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ev() -> Event {
        Event {
            kind: EventKind::Stop,
            call_id: "c1@host".into(),
            time_ms: 1_700_000_000_000,
            from_tag: "ft".into(),
            to_tag: "tt".into(),
            caller: "alice@example.com".into(),
            callee: "4930123@example.com".into(),
            caller_customer: Some(7),
            callee_customer: None,
            node: "proxy1a".into(),
            reason: Some("bye".into()),
            answer_ms: None,
        }
    }

    #[test]
    fn round_trips_the_proxy_serialisation() {
        let line = serde_json::to_string(&ev()).unwrap();
        assert_eq!(parse_line(&line).unwrap(), ev());
        let mut start = ev();
        start.kind = EventKind::Start;
        start.reason = None;
        let line = serde_json::to_string(&start).unwrap();
        assert!(!line.contains("reason"));
        assert_eq!(parse_line(&line).unwrap(), start);
    }

    #[test]
    fn errors_name_the_field() {
        let mut v = serde_json::to_value(ev()).unwrap();
        v["time_ms"] = Value::String("yesterday".into());
        let e = parse_line(&v.to_string()).unwrap_err();
        assert_eq!(e.field(), Some("time_ms"), "{e}");
        let mut v = serde_json::to_value(ev()).unwrap();
        v.as_object_mut().unwrap().remove("call_id");
        let e = parse_line(&v.to_string()).unwrap_err();
        assert_eq!(e.to_string(), "field `call_id`: missing");
        let mut v = serde_json::to_value(ev()).unwrap();
        v["kind"] = Value::String("pause".into());
        assert_eq!(
            parse_line(&v.to_string()).unwrap_err().field(),
            Some("kind")
        );
        let mut v = serde_json::to_value(ev()).unwrap();
        v["caller_customer"] = Value::from(-3);
        assert_eq!(
            parse_line(&v.to_string()).unwrap_err().field(),
            Some("caller_customer")
        );
        assert!(matches!(
            parse_line("{\"kind\":\"sta"),
            Err(LineError::Syntax(_))
        ));
        assert!(matches!(parse_line("[1,2]"), Err(LineError::Syntax(_))));
    }

    proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in ".{0,200}") {
            let _ = parse_line(&s);
        }

        /// Fast and slow path agree on every line either accepts.
        #[test]
        fn fast_and_slow_paths_agree(
            call in "[a-z0-9@.]{0,12}", t in 0u64..u64::MAX, cust in proptest::option::of(0u64..100),
            callee in "[0-9]{0,6}", reason in proptest::option::of("[a-z]{0,5}")
        ) {
            let mut e = ev();
            e.call_id = call;
            e.time_ms = t;
            e.caller_customer = cust;
            e.callee = callee;
            e.reason = reason;
            let line = serde_json::to_string(&e).unwrap();
            prop_assert_eq!(parse_line(&line), parse_value(&line));
        }
    }
}
