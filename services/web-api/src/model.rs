//! The resources of the API (domains, customers, subscribers): their JSON
//! shape, and the checks that turn a request body into a value that can be
//! stored ("parse, don't validate"). Every rejection names the field.
//!
//! No database access here; [`crate::store`] takes the checked values.

use serde::Serialize;
use serde_json::{Map, Value};

/// A rejected field: `field` is the JSON name, `reason` says what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {reason}")]
pub struct FieldError {
    pub field: String,
    pub reason: String,
}

fn bad(field: &str, reason: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

/// A SIP domain served by the proxies (also the digest realm).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Domain {
    pub id: u64,
    pub name: String,
}

/// A customer (account owning subscribers, with a call limit for all of them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Customer {
    pub id: u64,
    pub name: String,
    pub max_concurrent_calls: Option<u32>,
}

/// A subscriber as the API shows it: never the password or its hashes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscriber {
    pub id: u64,
    pub username: String,
    pub domain: String,
    pub customer_id: u64,
    pub max_concurrent_calls: Option<u32>,
}

/// Checked input for a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainInput {
    pub name: String,
}

/// Checked input for a customer; `id` only when the client chose one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerInput {
    pub id: Option<u64>,
    pub name: String,
    pub max_concurrent_calls: Option<u32>,
}

/// Checked input for a subscriber; `password` may be absent on update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberInput {
    pub username: String,
    pub domain: String,
    pub password: Option<String>,
    pub customer_id: u64,
    pub max_concurrent_calls: Option<u32>,
}

/// Parses a request body into a JSON object.
pub fn parse_object(body: &[u8]) -> Result<Map<String, Value>, FieldError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad("body", "expected a JSON object")),
        Err(e) => Err(bad("body", format!("not valid JSON: {e}"))),
    }
}

/// Rejects fields other than `allowed` (typos must not be silently ignored).
pub fn only_fields(m: &Map<String, Value>, allowed: &[&str]) -> Result<(), FieldError> {
    match m.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(bad(
            k,
            format!("unknown field (allowed: {})", allowed.join(", ")),
        )),
        None => Ok(()),
    }
}

/// Overlays `patch` on `base` (RFC 7396 merge for flat objects; `null`
/// is kept as a value because the nullable fields mean "no limit").
pub fn merge(mut base: Map<String, Value>, patch: Map<String, Value>) -> Map<String, Value> {
    for (k, v) in patch {
        base.insert(k, v);
    }
    base
}

fn req_str<'a>(m: &'a Map<String, Value>, field: &str) -> Result<&'a str, FieldError> {
    match m.get(field) {
        None | Some(Value::Null) => Err(bad(field, "required")),
        Some(Value::String(s)) => Ok(s),
        Some(_) => Err(bad(field, "must be a string")),
    }
}

fn opt_str<'a>(m: &'a Map<String, Value>, field: &str) -> Result<Option<&'a str>, FieldError> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(field, "must be a string")),
    }
}

fn id_value(field: &str, v: &Value) -> Result<u64, FieldError> {
    match v.as_u64() {
        Some(n) if (1..=i64::MAX as u64).contains(&n) => Ok(n),
        _ => Err(bad(field, "must be a positive integer")),
    }
}

fn limit(m: &Map<String, Value>, field: &str) -> Result<Option<u32>, FieldError> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_u64() {
            Some(n) if n <= 1_000_000 => Ok(Some(n as u32)),
            _ => Err(bad(
                field,
                "must be null (no limit) or an integer from 0 to 1000000",
            )),
        },
    }
}

fn text(field: &str, s: &str, max: usize) -> Result<String, FieldError> {
    let t = s.trim();
    if t.is_empty() {
        return Err(bad(field, "must not be empty"));
    }
    if t.chars().count() > max {
        return Err(bad(field, format!("at most {max} characters")));
    }
    if t.chars().any(char::is_control) {
        return Err(bad(field, "must not contain control characters"));
    }
    Ok(t.to_owned())
}

/// A DNS name used as SIP domain: labels of letters, digits and hyphens,
/// lower-cased (RFC 3261 §25.1 `hostname`).
pub fn domain_name(field: &str, s: &str) -> Result<String, FieldError> {
    let d = s.trim().trim_end_matches('.').to_ascii_lowercase();
    let ok = !d.is_empty()
        && d.len() <= 128
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(d)
    } else {
        Err(bad(
            field,
            "must be a DNS name (letters, digits, hyphens, dots; at most 128 characters)",
        ))
    }
}

/// A SIP user part without escapes: RFC 3261 §25.1 `unreserved` and
/// `user-unreserved` characters. `:` and `@` are excluded (they delimit
/// the digest HA1 input and the address of record).
fn sip_user(field: &str, s: &str) -> Result<String, FieldError> {
    const EXTRA: &[u8] = b"-_.!~*'()&=+$,;?/";
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || EXTRA.contains(&b));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(bad(
            field,
            "must be 1 to 64 characters: letters, digits and -_.!~*'()&=+$,;?/",
        ))
    }
}

fn password(field: &str, s: &str) -> Result<String, FieldError> {
    let n = s.chars().count();
    if !(8..=128).contains(&n) {
        return Err(bad(field, "must be 8 to 128 characters"));
    }
    if s.chars().any(char::is_control) {
        return Err(bad(field, "must not contain control characters"));
    }
    Ok(s.to_owned())
}

impl DomainInput {
    /// Checks a domain body.
    pub fn from_json(m: &Map<String, Value>) -> Result<Self, FieldError> {
        only_fields(m, &["id", "name"])?;
        Ok(DomainInput {
            name: domain_name("name", req_str(m, "name")?)?,
        })
    }
}

impl CustomerInput {
    /// Checks a customer body.
    pub fn from_json(m: &Map<String, Value>) -> Result<Self, FieldError> {
        only_fields(m, &["id", "name", "max_concurrent_calls"])?;
        let id = match m.get("id") {
            None | Some(Value::Null) => None,
            Some(v) => Some(id_value("id", v)?),
        };
        Ok(CustomerInput {
            id,
            name: text("name", req_str(m, "name")?, 128)?,
            max_concurrent_calls: limit(m, "max_concurrent_calls")?,
        })
    }
}

impl SubscriberInput {
    /// Checks a subscriber body; `password_required` on creation.
    pub fn from_json(m: &Map<String, Value>, password_required: bool) -> Result<Self, FieldError> {
        only_fields(
            m,
            &[
                "id",
                "username",
                "domain",
                "password",
                "customer_id",
                "max_concurrent_calls",
            ],
        )?;
        let username = sip_user("username", req_str(m, "username")?)?;
        let domain = domain_name("domain", req_str(m, "domain")?)?;
        let password = match opt_str(m, "password")? {
            Some(p) => Some(password("password", p)?),
            None if password_required => return Err(bad("password", "required")),
            None => None,
        };
        let customer_id = match m.get("customer_id") {
            None | Some(Value::Null) => return Err(bad("customer_id", "required")),
            Some(v) => id_value("customer_id", v)?,
        };
        Ok(SubscriberInput {
            username,
            domain,
            password,
            customer_id,
            max_concurrent_calls: limit(m, "max_concurrent_calls")?,
        })
    }
}

/// Checks that a body's `id`, when present, is the one in the path.
pub fn id_matches(m: &Map<String, Value>, id: u64) -> Result<(), FieldError> {
    match m.get("id") {
        None => Ok(()),
        Some(v) if v.as_u64() == Some(id) => Ok(()),
        Some(_) => Err(bad("id", format!("differs from the id in the path ({id})"))),
    }
}

/// Pagination of list requests: `?limit=N&offset=M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub limit: u32,
    pub offset: u64,
}

/// Query parameters of a list request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub page: Option<Page>,
    /// Subscriber filters.
    pub domain: Option<String>,
    pub customer_id: Option<u64>,
}

/// Largest page a client may ask for.
pub const MAX_LIMIT: u32 = 1000;
/// Page size when the client names none.
pub const DEFAULT_LIMIT: u32 = 100;

/// Parses `limit`, `offset` and the filters in `allowed_filters`.
pub fn list_query(query: Option<&str>, allowed_filters: &[&str]) -> Result<ListQuery, FieldError> {
    let mut page = Page {
        limit: DEFAULT_LIMIT,
        offset: 0,
    };
    let mut q = ListQuery::default();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v).ok_or_else(|| bad(k, "bad percent-encoding"))?;
        match k {
            "limit" => {
                page.limit = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| bad("limit", format!("must be 1 to {MAX_LIMIT}")))?;
            }
            "offset" => {
                page.offset = v
                    .parse()
                    .ok()
                    .filter(|n| *n <= i64::MAX as u64)
                    .ok_or_else(|| bad("offset", "must be a non-negative integer"))?;
            }
            "domain" if allowed_filters.contains(&"domain") => {
                q.domain = Some(domain_name("domain", &v)?);
            }
            "customer_id" if allowed_filters.contains(&"customer_id") => {
                q.customer_id = Some(id_value(
                    "customer_id",
                    &Value::from(v.parse::<u64>().ok()),
                )?);
            }
            other => {
                let mut allowed = vec!["limit", "offset"];
                allowed.extend_from_slice(allowed_filters);
                return Err(bad(
                    other,
                    format!("unknown query parameter (allowed: {})", allowed.join(", ")),
                ));
            }
        }
    }
    q.page = Some(page);
    Ok(q)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let h = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn subscriber_checks_name_the_field() {
        let ok = json!({"username": "alice", "domain": "Example.COM", "password": "secret-pw",
                        "customer_id": 1, "max_concurrent_calls": 2});
        let s = SubscriberInput::from_json(&obj(ok.clone()), true).unwrap();
        assert_eq!(s.domain, "example.com");
        assert_eq!(s.max_concurrent_calls, Some(2));
        for (field, v) in [
            ("username", json!("al:ice")),
            ("username", json!("")),
            ("domain", json!("exa mple.com")),
            ("password", json!("short")),
            ("customer_id", json!(0)),
            ("customer_id", json!("1")),
            ("max_concurrent_calls", json!(-1)),
            ("max_concurrent_calls", json!(1.5)),
        ] {
            let mut m = obj(ok.clone());
            m.insert(field.into(), v.clone());
            let e = SubscriberInput::from_json(&m, true).unwrap_err();
            assert_eq!(e.field, field, "{v}: {e}");
        }
        let mut m = obj(ok.clone());
        m.remove("password");
        assert_eq!(
            SubscriberInput::from_json(&m, true).unwrap_err().field,
            "password"
        );
        assert!(SubscriberInput::from_json(&m, false)
            .unwrap()
            .password
            .is_none());
        m.insert("pasword".into(), json!("x"));
        assert_eq!(
            SubscriberInput::from_json(&m, false).unwrap_err().field,
            "pasword"
        );
    }

    #[test]
    fn list_query_parses_and_rejects() {
        let q = list_query(Some("limit=10&offset=20&domain=Ex%2Ecom"), &["domain"]).unwrap();
        assert_eq!(
            q.page,
            Some(Page {
                limit: 10,
                offset: 20
            })
        );
        assert_eq!(q.domain.as_deref(), Some("ex.com"));
        assert_eq!(list_query(Some("limit=0"), &[]).unwrap_err().field, "limit");
        assert_eq!(
            list_query(Some("limit=1001"), &[]).unwrap_err().field,
            "limit"
        );
        assert_eq!(
            list_query(Some("offset=-1"), &[]).unwrap_err().field,
            "offset"
        );
        assert_eq!(
            list_query(Some("domain=x"), &[]).unwrap_err().field,
            "domain"
        );
        assert_eq!(
            list_query(None, &[]).unwrap().page.unwrap().limit,
            DEFAULT_LIMIT
        );
    }

    #[test]
    fn body_must_be_an_object() {
        assert_eq!(parse_object(b"[1]").unwrap_err().field, "body");
        assert_eq!(parse_object(b"{").unwrap_err().field, "body");
    }

    proptest::proptest! {
        // Whatever the bytes, checking never panics and an accepted
        // username never contains the HA1/AOR delimiters.
        #[test]
        fn any_body_is_checked_without_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            if let Ok(m) = parse_object(&body) {
                if let Ok(s) = SubscriberInput::from_json(&m, true) {
                    proptest::prop_assert!(!s.username.contains(':') && !s.username.contains('@'));
                }
            }
        }

        #[test]
        fn accepted_usernames_have_no_delimiters(u in "\\PC{0,70}") {
            if let Ok(v) = sip_user("username", &u) {
                proptest::prop_assert!(!v.contains(':') && !v.contains('@') && !v.is_empty());
            }
        }
    }
}
