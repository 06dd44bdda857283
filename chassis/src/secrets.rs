//! The deployment's secrets file: `name = value` lines, `#` comments and
//! blank lines ignored. Profiles name credentials by reference
//! (`credentials = "cmm"` → `cmm.password`, ...); the supervisor, the image
//! builder and the db hooks read the values from this one format.

/// The `(name, value)` entries of a secrets text, trimmed, in file order
/// (a later entry for the same name wins where callers keep one). A line
/// that is not `name = value` with a non-empty name is an error carrying
/// its 1-based line number.
pub fn entries(text: &str) -> Result<Vec<(&str, &str)>, usize> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => out.push((k.trim(), v.trim())),
            _ => return Err(i + 1),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_trimmed_and_comments_skipped() {
        let t = "# c\n\n a.b = x y \nc=\n";
        assert_eq!(entries(t), Ok(vec![("a.b", "x y"), ("c", "")]));
    }

    #[test]
    fn a_line_without_name_or_equals_names_its_line() {
        assert_eq!(entries("a = 1\nnope\n"), Err(2));
        assert_eq!(entries("a = 1\n\n = 2\n"), Err(3));
    }
}
