//! Diagnostics: what is wrong in a profile, where, and how it reads.
//!
//! A [`Diagnostic`] carries a stable code, the dotted field path, and a byte
//! span into the source; [`Source`] turns spans into `file:line:column` and
//! renders rustc-style snippets. Nothing here knows the profile schema.

use std::fmt::{self, Write as _};
use std::ops::Range;

use serde::Serialize;

/// One segment of a field path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A field path such as `chassis[0].bays[3].hostname`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Seg>);

impl FieldPath {
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    /// This path extended by a key.
    pub fn key(&self, k: &str) -> Self {
        let mut p = self.0.clone();
        p.push(Seg::Key(k.to_owned()));
        FieldPath(p)
    }

    /// This path extended by an array index.
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.0.clone();
        p.push(Seg::Index(i));
        FieldPath(p)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A problem found in a profile.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// Stable machine-readable kind, e.g. `duplicate-hostname`.
    pub code: &'static str,
    pub message: String,
    pub path: FieldPath,
    /// Where in the source; `None` when the path could not be located.
    pub span: Option<Range<usize>>,
    /// Short text shown under the caret.
    pub label: String,
    /// A hint on what to do, when there is one.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn new(code: &'static str, path: FieldPath, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            message: message.into(),
            path,
            span: None,
            label: String::new(),
            help: None,
        }
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// A profile's text with its file name, for locating and rendering spans.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub text: String,
    line_starts: Vec<usize>,
}

/// A diagnostic as scripts read it (`flexctl profile check --json`).
#[derive(Debug, Clone, Serialize)]
pub struct Located {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub code: String,
    pub field: String,
    pub message: String,
    pub help: Option<String>,
}

impl Source {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        let text = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source {
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = match self.line_starts.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let start = self.line_starts[line];
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, col + 1)
    }

    fn line_text(&self, line: usize) -> &str {
        let start = self.line_starts[line - 1];
        let end = self
            .line_starts
            .get(line)
            .map_or(self.text.len(), |e| e.saturating_sub(1));
        self.text
            .get(start..end)
            .unwrap_or("")
            .trim_end_matches('\r')
    }

    /// The diagnostic in the form scripts read.
    pub fn locate(&self, d: &Diagnostic) -> Located {
        let (line, column) = d.span.as_ref().map_or((1, 1), |s| self.line_col(s.start));
        Located {
            file: self.name.clone(),
            line,
            column,
            code: d.code.to_owned(),
            field: d.path.to_string(),
            message: d.message.clone(),
            help: d.help.clone(),
        }
    }

    /// Render a diagnostic the way rustc does: header, location, the source
    /// line with a caret under the offending text, and the help.
    pub fn render(&self, d: &Diagnostic) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "error[{}]: {}", d.code, d.message);
        let Some(span) = &d.span else {
            let _ = writeln!(out, "  --> {} (field `{}`)", self.name, d.path);
            if let Some(h) = &d.help {
                let _ = writeln!(out, "  = help: {h}");
            }
            return out;
        };
        let (line, col) = self.line_col(span.start);
        let text = self.line_text(line);
        let gutter = line.to_string().len();
        let pad = " ".repeat(gutter);
        let _ = writeln!(out, "{pad}--> {}:{line}:{col}", self.name);
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{line} | {text}");
        // Underline up to the end of the span or of the line, at least one caret.
        let line_chars = text.chars().count();
        let span_chars = self
            .text
            .get(span.clone())
            .map_or(1, |s| s.lines().next().unwrap_or("").chars().count());
        let width = span_chars.clamp(1, line_chars.saturating_sub(col - 1).max(1));
        let field = if d.path.0.is_empty() {
            String::new()
        } else {
            format!(" (field `{}`)", d.path)
        };
        let _ = writeln!(
            out,
            "{pad} | {}{} {}{field}",
            " ".repeat(col - 1),
            "^".repeat(width),
            d.label
        );
        if let Some(h) = &d.help {
            let _ = writeln!(out, "{pad} = help: {h}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let s = Source::new("p.toml", "a = 1\nbb = 2\n");
        assert_eq!(s.line_col(0), (1, 1));
        assert_eq!(s.line_col(6), (2, 1));
        assert_eq!(s.line_col(9), (2, 4));
    }

    #[test]
    fn render_points_at_the_span() {
        let s = Source::new("p.toml", "name = \"x\"\nhostnmae = \"web1a\"\n");
        let d = Diagnostic::new(
            "unknown-key",
            FieldPath::root().key("hostnmae"),
            "unknown key",
        )
        .label("not a known key");
        let d = Diagnostic {
            span: Some(11..19),
            ..d
        };
        let r = s.render(&d);
        assert!(r.contains("--> p.toml:2:1"), "{r}");
        assert!(r.contains("2 | hostnmae = \"web1a\""), "{r}");
        assert!(r.contains("  | ^^^^^^^^ not a known key"), "{r}");
    }

    #[test]
    fn path_display() {
        let p = FieldPath::root()
            .key("chassis")
            .index(0)
            .key("bays")
            .index(2)
            .key("bay");
        assert_eq!(p.to_string(), "chassis[0].bays[2].bay");
    }
}
