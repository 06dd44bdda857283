//! Scenario results: the table printed at the end of a run and the JSON
//! written with `--json`.

use serde::Serialize;

/// How a scenario ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", content = "reason", rename_all = "UPPERCASE")]
pub enum Outcome {
    /// Every check held.
    Pass,
    /// A check did not hold (what, with evidence).
    Fail(String),
    /// A dependency is missing, so the scenario could not be run to the
    /// end; never counted as a pass.
    Blocked(String),
}

impl Outcome {
    /// `PASS`, `FAIL` or `BLOCKED`.
    pub fn label(&self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail(_) => "FAIL",
            Outcome::Blocked(_) => "BLOCKED",
        }
    }

    /// The reason, empty for a pass.
    pub fn reason(&self) -> &str {
        match self {
            Outcome::Pass => "",
            Outcome::Fail(r) | Outcome::Blocked(r) => r,
        }
    }
}

/// One scenario's result.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    /// Scenario name.
    pub scenario: String,
    /// Outcome.
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Wall time in seconds.
    pub wall_s: f64,
    /// What was checked and measured, in order.
    pub details: Vec<String>,
    /// Figures measured (name, value, unit).
    pub figures: Vec<Figure>,
    /// Where logs, consoles and QMP events of the run are.
    pub run_dir: String,
}

/// A measured figure.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// Value.
    pub value: f64,
    /// Unit.
    pub unit: String,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// Profile file.
    pub profile: String,
    /// Results in run order.
    pub scenarios: Vec<ScenarioResult>,
    /// Total wall time in seconds.
    pub wall_s: f64,
}

impl RunReport {
    /// Exit code: 0 all passed, 1 something blocked, 2 something failed.
    pub fn exit_code(&self) -> u8 {
        if self
            .scenarios
            .iter()
            .any(|s| matches!(s.outcome, Outcome::Fail(_)))
        {
            2
        } else if self
            .scenarios
            .iter()
            .any(|s| matches!(s.outcome, Outcome::Blocked(_)))
        {
            1
        } else {
            0
        }
    }

    /// The result table: scenario, result, wall time, details.
    pub fn table(&self) -> String {
        let w = self
            .scenarios
            .iter()
            .map(|s| s.scenario.len())
            .max()
            .unwrap_or(8)
            .max(8);
        let mut t = format!(
            "{:<w$}  {:<7}  {:>8}  details\n",
            "scenario", "result", "wall"
        );
        t += &format!(
            "{}  {}  {}  {}\n",
            "-".repeat(w),
            "-".repeat(7),
            "-".repeat(8),
            "-".repeat(40)
        );
        for s in &self.scenarios {
            let mut detail = s.outcome.reason().to_owned();
            for f in &s.figures {
                if !detail.is_empty() {
                    detail += "; ";
                }
                detail += &format!("{} {:.1} {}", f.name, f.value, f.unit);
            }
            let first = detail.lines().next().unwrap_or("");
            t += &format!(
                "{:<w$}  {:<7}  {:>7.1}s  {}\n",
                s.scenario,
                s.outcome.label(),
                s.wall_s,
                first
            );
        }
        t += &format!("total wall time {:.1}s\n", self.wall_s);
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(name: &str, o: Outcome) -> ScenarioResult {
        ScenarioResult {
            scenario: name.into(),
            outcome: o,
            wall_s: 1.25,
            details: vec![],
            figures: vec![Figure {
                name: "takeover".into(),
                value: 3.5,
                unit: "s".into(),
            }],
            run_dir: "/r".into(),
        }
    }

    #[test]
    fn blocked_is_never_a_pass_and_failure_wins() {
        let mut r = RunReport {
            profile: "p".into(),
            scenarios: vec![
                res("a", Outcome::Pass),
                res("b", Outcome::Blocked("no images".into())),
            ],
            wall_s: 2.0,
        };
        assert_eq!(r.exit_code(), 1);
        r.scenarios.push(res("c", Outcome::Fail("x".into())));
        assert_eq!(r.exit_code(), 2);
        let t = r.table();
        assert!(
            t.contains("b         BLOCKED      1.2s  no images; takeover 3.5 s"),
            "{t}"
        );
    }

    #[test]
    fn json_names_result_and_reason() {
        let j = serde_json::to_value(res("b", Outcome::Blocked("no images".into()))).unwrap();
        assert_eq!(j["result"], "BLOCKED");
        assert_eq!(j["reason"], "no images");
        assert_eq!(j["scenario"], "b");
    }
}
