//! Mutated profiles never panic the checker, and a typo in a required key
//! is reported both as unknown and as missing, at its line.

use proptest::prelude::*;

const SEED: &str = include_str!("../../chassis-profiles/c5-50k.toml");

#[derive(Debug, Clone)]
enum Mutation {
    DeleteLine(usize),
    DuplicateLine(usize),
    SwapLines(usize, usize),
    ReplaceByte(usize, u8),
    TruncateAt(usize),
    ReplaceNumber(usize, i64),
}

fn apply(text: &str, m: &Mutation) -> String {
    let mut lines: Vec<&str> = text.lines().collect();
    let n = lines.len();
    match *m {
        Mutation::DeleteLine(i) => {
            lines.remove(i % n);
            lines.join("\n")
        }
        Mutation::DuplicateLine(i) => {
            lines.insert(i % n, lines[i % n]);
            lines.join("\n")
        }
        Mutation::SwapLines(a, b) => {
            lines.swap(a % n, b % n);
            lines.join("\n")
        }
        Mutation::ReplaceByte(i, b) => {
            let mut bytes = text.as_bytes().to_vec();
            let len = bytes.len();
            bytes[i % len] = b;
            String::from_utf8_lossy(&bytes).into_owned()
        }
        Mutation::TruncateAt(i) => {
            let cut = i % text.len();
            String::from_utf8_lossy(&text.as_bytes()[..cut]).into_owned()
        }
        Mutation::ReplaceNumber(i, v) => {
            // Replace the i-th integer literal in the file.
            let mut seen = 0;
            let mut out = String::new();
            for (li, line) in lines.iter().enumerate() {
                if let Some((k, val)) = line.split_once(" = ") {
                    if val.trim().parse::<i64>().is_ok() {
                        if seen == i % 40 {
                            out.push_str(&format!("{k} = {v}\n"));
                            seen += 1;
                            continue;
                        }
                        seen += 1;
                    }
                }
                out.push_str(lines[li]);
                out.push('\n');
            }
            out
        }
    }
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::ReplaceByte(i, b)),
        any::<usize>().prop_map(Mutation::TruncateAt),
        (any::<usize>(), any::<i64>()).prop_map(|(i, v)| Mutation::ReplaceNumber(i, v)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn mutated_profiles_never_panic(ms in prop::collection::vec(mutation(), 1..4)) {
        let mut text = SEED.to_owned();
        for m in &ms {
            text = apply(&text, m);
        }
        match chassis::load_str("mutated.toml", &text) {
            Ok(loaded) => {
                // A profile that still validates must resolve every node.
                for (c, bay) in chassis::node::bays(&loaded.profile) {
                    prop_assert!(chassis::node::resolve(&loaded.profile, bay, Some(c)).is_ok());
                }
            }
            Err(r) => {
                prop_assert!(!r.diagnostics.is_empty());
                // Rendering never panics and always names the file.
                prop_assert!(r.render().contains("mutated.toml"));
            }
        }
    }
}

#[test]
fn typo_in_a_required_key_is_unknown_and_missing() {
    let text = SEED.replacen("metrics_port = 9100", "metrcs_port = 9100", 1);
    let line = text
        .lines()
        .position(|l| l.starts_with("metrcs_port"))
        .expect("mutated line")
        + 1;
    let r = chassis::load_str("typo.toml", &text).expect_err("typo must be rejected");
    let located: Vec<_> = r.diagnostics.iter().map(|d| r.source.locate(d)).collect();
    let unknown = located
        .iter()
        .find(|l| l.code == "unknown-key")
        .expect("unknown key reported");
    assert_eq!(unknown.line, line);
    assert_eq!(
        unknown.help.as_deref(),
        Some("did you mean `metrics_port`?")
    );
    assert!(
        located
            .iter()
            .any(|l| l.code == "invalid-field" && l.message.contains("metrics_port")),
        "{}",
        r.render()
    );
}
