//! Each broken profile under `tests/fixtures/broken/` marks the lines where
//! the checker must point with `# expect: CODE`. The checker must report
//! every marked problem at that line, and nothing else.

use std::collections::BTreeSet;
use std::path::PathBuf;

fn fixtures() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/broken");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// (line, code) pairs marked in the file.
fn expectations(text: &str) -> BTreeSet<(usize, String)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let code = l.split("# expect: ").nth(1)?;
            let code: String = code
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                .collect();
            (!code.is_empty()).then_some((i + 1, code))
        })
        .collect()
}

#[test]
fn every_broken_profile_reports_each_problem_at_its_line() {
    let files = fixtures();
    assert!(
        files.len() >= 12,
        "expected a dozen broken profiles, found {}",
        files.len()
    );
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read fixture");
        let name = f.display().to_string();
        let want = expectations(&text);
        assert!(!want.is_empty(), "{name} marks no expected problem");
        let rejected = match chassis::load_str(&name, &text) {
            Ok(_) => panic!("{name} was accepted"),
            Err(r) => r,
        };
        let got: BTreeSet<(usize, String)> = rejected
            .diagnostics
            .iter()
            .map(|d| {
                let l = rejected.source.locate(d);
                (l.line, l.code)
            })
            .collect();
        assert_eq!(
            got,
            want,
            "{name}: diagnostics differ from the marks\n{}",
            rejected.render()
        );
        // Every rendered diagnostic names file:line:column.
        for d in &rejected.diagnostics {
            let l = rejected.source.locate(d);
            let r = rejected.source.render(d);
            assert!(
                r.contains(&format!("{name}:{}:{}", l.line, l.column)),
                "{r}"
            );
        }
    }
}

#[test]
fn seed_profiles_validate() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../chassis-profiles");
    for name in ["c5-50k.toml", "c5-200k.toml", "c5-400k-2chassis.toml"] {
        let path = dir.join(name);
        if let Err(e) = chassis::load_file(&path) {
            match e {
                chassis::LoadError::Invalid(r) => panic!("{name}:\n{}", r.render()),
                other => panic!("{name}: {other}"),
            }
        }
    }
}
