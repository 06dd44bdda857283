//! Reading a profile file: TOML syntax, shape, unknown keys, then validation.
//!
//! Syntax and type errors stop the reading (nothing sensible can follow);
//! unknown keys are all collected, and validation then reports every
//! semantic problem. All diagnostics carry a span located through the
//! document's own syntax tree, so each names `file:line:column`.

use std::ops::Range;
use std::path::Path;

use toml_edit::{ImDocument, Item, Value};

use crate::diag::{Diagnostic, FieldPath, Seg, Source};
use crate::model::Profile;
use crate::validate;

/// A profile that read and validated cleanly, with its source.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub profile: Profile,
    pub source: Source,
}

/// A profile with problems: every diagnostic found, and the source to render them.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub source: Source,
    pub diagnostics: Vec<Diagnostic>,
}

impl Rejected {
    /// All diagnostics rendered rustc-style, one after the other.
    pub fn render(&self) -> String {
        self.diagnostics
            .iter()
            .map(|d| self.source.render(d))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Why a profile could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read profile {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{} problem(s) in {}", .0.diagnostics.len(), .0.source.name)]
    Invalid(Box<Rejected>),
}

/// Read and check the profile at `path`.
pub fn load_file(path: &Path) -> Result<Loaded, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.display().to_string(),
        source,
    })?;
    load_str(&path.display().to_string(), &text).map_err(|r| LoadError::Invalid(Box::new(r)))
}

/// Check a profile given as text; `name` is used in diagnostics.
pub fn load_str(name: &str, text: &str) -> Result<Loaded, Rejected> {
    let source = Source::new(name, text);
    let reject = |diagnostics| Rejected {
        source: source.clone(),
        diagnostics,
    };

    let doc = match ImDocument::parse(text.to_owned()) {
        Ok(doc) => doc,
        Err(e) => {
            let mut d = Diagnostic::new("toml-syntax", FieldPath::root(), e.message().to_owned())
                .label("TOML syntax error here");
            d.span = e.span();
            return Err(reject(vec![d]));
        }
    };

    let mut unknown = Vec::new();
    let de = toml::Deserializer::new(text);
    let parsed: Result<Profile, _> = serde_ignored::deserialize(de, |path| {
        unknown.push(ignored_path(&path));
    });

    let mut diags: Vec<Diagnostic> = unknown
        .into_iter()
        .map(|p| {
            let key = match p.0.last() {
                Some(Seg::Key(k)) => k.clone(),
                _ => p.to_string(),
            };
            let help = match suggest(&key) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "see chassis-profiles/README.md for the fields of each table".to_owned(),
            };
            let mut d = Diagnostic::new("unknown-key", p.clone(), format!("unknown key `{key}`"))
                .label("not a field of this table")
                .help(help);
            d.span = key_span(&doc, &p);
            d
        })
        .collect();

    let profile = match parsed {
        Ok(p) => p,
        Err(e) => {
            // A missing field or wrong type: serde stops at the first one.
            let msg = e.message().to_owned();
            let mut d = Diagnostic::new("invalid-field", FieldPath::root(), msg)
                .label("wrong or missing field");
            d.span = e.span();
            diags.push(d);
            return Err(reject(diags));
        }
    };

    diags.extend(validate::check(&profile));
    for d in &mut diags {
        if d.span.is_none() {
            d.span = value_span(&doc, &d.path);
        }
    }
    if diags.is_empty() {
        Ok(Loaded { profile, source })
    } else {
        diags.sort_by_key(|d| d.span.as_ref().map_or(usize::MAX, |s| s.start));
        Err(reject(diags))
    }
}

/// The known field closest to a mistyped key, if one is close enough.
fn suggest(key: &str) -> Option<&'static str> {
    crate::model::FIELD_NAMES
        .iter()
        .map(|f| (edit_distance(key, f), *f))
        .filter(|(d, f)| *d <= 2.max(f.len() / 4))
        .min()
        .map(|(_, f)| f)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(cur).min(row[j])
            };
            prev = cur;
        }
    }
    row[b.len()]
}

fn ignored_path(path: &serde_ignored::Path<'_>) -> FieldPath {
    let mut segs = Vec::new();
    let mut cur = Some(path);
    while let Some(p) = cur {
        cur = match p {
            serde_ignored::Path::Root => None,
            serde_ignored::Path::Seq { parent, index } => {
                segs.push(Seg::Index(*index));
                Some(*parent)
            }
            serde_ignored::Path::Map { parent, key } => {
                segs.push(Seg::Key(key.clone()));
                Some(*parent)
            }
            serde_ignored::Path::Some { parent }
            | serde_ignored::Path::NewtypeStruct { parent }
            | serde_ignored::Path::NewtypeVariant { parent } => Some(*parent),
        };
    }
    segs.reverse();
    FieldPath(segs)
}

/// One step down the document: a table key or an array element.
enum Node<'a> {
    Item(&'a Item),
    Value(&'a Value),
}

fn child<'a>(node: &Node<'a>, seg: &Seg) -> Option<(Node<'a>, Option<Range<usize>>)> {
    let value: &'a Value = match node {
        Node::Item(Item::Value(v)) => v,
        Node::Value(v) => v,
        Node::Item(_) => return None,
    };
    match (value, seg) {
        (Value::InlineTable(t), Seg::Key(k)) => {
            let (key, item) = t.get_key_value(k)?;
            Some((Node::Value(item.as_value()?), key.span()))
        }
        (Value::Array(a), Seg::Index(i)) => {
            let v = a.get(*i)?;
            Some((Node::Value(v), v.span()))
        }
        _ => None,
    }
}

/// Follow `path` through the document; per segment reached, its key span and
/// value span (tables inside arrays of tables have only their header span).
type Spans = (Option<Range<usize>>, Option<Range<usize>>);

fn walk(doc: &ImDocument<String>, path: &FieldPath) -> Vec<Spans> {
    let mut out = Vec::new();
    let mut table: Option<&toml_edit::Table> = Some(doc.as_table());
    let mut node: Option<Node<'_>> = None;
    for seg in &path.0 {
        if let Some(t) = table.take() {
            let Seg::Key(k) = seg else { break };
            let Some((key, item)) = t.get_key_value(k) else {
                break;
            };
            out.push((key.span(), item.span()));
            match item {
                Item::Table(inner) => table = Some(inner),
                other => node = Some(Node::Item(other)),
            }
            continue;
        }
        let Some(n) = node.take() else { break };
        if let (Node::Item(Item::ArrayOfTables(a)), Seg::Index(i)) = (&n, seg) {
            let Some(t) = a.get(*i) else { break };
            out.push((t.span(), t.span()));
            table = Some(t);
            continue;
        }
        let Some((next, key_span)) = child(&n, seg) else {
            break;
        };
        let value_span = match &next {
            Node::Item(i) => i.span(),
            Node::Value(v) => v.span(),
        };
        out.push((key_span, value_span));
        node = Some(next);
    }
    out
}

/// Span of the last key of `path` that exists in the document.
fn key_span(doc: &ImDocument<String>, path: &FieldPath) -> Option<Range<usize>> {
    walk(doc, path).into_iter().rev().find_map(|(k, v)| k.or(v))
}

/// Span of the value at `path`, or of the deepest part of it that exists.
fn value_span(doc: &ImDocument<String>, path: &FieldPath) -> Option<Range<usize>> {
    walk(doc, path).into_iter().rev().find_map(|(k, v)| v.or(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_find_the_typo() {
        assert_eq!(suggest("hostnmae"), Some("hostname"));
        assert_eq!(suggest("metric_port"), Some("metrics_port"));
        assert_eq!(suggest("colour"), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    /// Every key a serialized seed profile has (outside free-form maps)
    /// must be in FIELD_NAMES, so suggestions follow the model.
    #[test]
    fn field_names_cover_the_model() {
        fn walk(v: &serde_json::Value, under_map: bool, out: &mut Vec<String>) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, v) in m {
                        if !under_map {
                            out.push(k.clone());
                        }
                        let map =
                            matches!(k.as_str(), "networks" | "roles" | "addresses" | "priority");
                        walk(v, map && !under_map, out);
                    }
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, false, out)),
                _ => {}
            }
        }
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../chassis-profiles/c5-400k-2chassis.toml"
        );
        let text = std::fs::read_to_string(path).expect("seed profile");
        let loaded = load_str(path, &text).expect("seed profile validates");
        let json = serde_json::to_value(&loaded.profile).expect("serialize");
        let mut keys = Vec::new();
        walk(&json, false, &mut keys);
        for k in keys {
            assert!(
                crate::model::FIELD_NAMES.contains(&k.as_str()),
                "FIELD_NAMES lacks `{k}`"
            );
        }
    }
}
