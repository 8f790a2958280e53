//! The set of known workflows: loaded from a directory of TOML files, or the shipped ones built in.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::config::{WorkflowFile, WorkflowSpec};
use super::validate::{validate_workflow, Problem};

/// The shipped workflow files, embedded so the binary runs without `topologies/` on disk.
const BUILTIN: &[(&str, &str)] = &[
    (
        "topologies/workflows/investigate-and-remediate.toml",
        include_str!("../../topologies/workflows/investigate-and-remediate.toml"),
    ),
    (
        "topologies/workflows/triage.toml",
        include_str!("../../topologies/workflows/triage.toml"),
    ),
    (
        "topologies/workflows/memory-leak-remediation.toml",
        include_str!("../../topologies/workflows/memory-leak-remediation.toml"),
    ),
    (
        "topologies/workflows/partition-recovery.toml",
        include_str!("../../topologies/workflows/partition-recovery.toml"),
    ),
    (
        "topologies/workflows/cascade-containment.toml",
        include_str!("../../topologies/workflows/cascade-containment.toml"),
    ),
    (
        "topologies/workflows/ddos-mitigation.toml",
        include_str!("../../topologies/workflows/ddos-mitigation.toml"),
    ),
    (
        "topologies/workflows/drift-review.toml",
        include_str!("../../topologies/workflows/drift-review.toml"),
    ),
    (
        "topologies/workflows/sensor-check.toml",
        include_str!("../../topologies/workflows/sensor-check.toml"),
    ),
    (
        "topologies/workflows/contention-relief.toml",
        include_str!("../../topologies/workflows/contention-relief.toml"),
    ),
    (
        "topologies/workflows/change-rollback.toml",
        include_str!("../../topologies/workflows/change-rollback.toml"),
    ),
];

/// Why workflows could not be loaded. Always fatal: a bad topology stops start-up.
#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    #[error("cannot read workflow directory {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{} problem(s) in workflow definitions:\n{}", .0.len(), render(.0))]
    Invalid(Vec<Problem>),
}

fn render(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(|p| format!("  {p}")).collect();
    lines.join("\n")
}

/// Validated workflows by name, shared read-only by every partition's saga engine.
#[derive(Debug, Clone, Default)]
pub struct Workflows {
    by_name: BTreeMap<String, Arc<WorkflowSpec>>,
    /// Which file each workflow came from, for messages.
    files: BTreeMap<String, String>,
}

impl Workflows {
    /// The workflows shipped in `topologies/workflows/`, compiled into the binary.
    pub fn builtin() -> Result<Self, WorkflowError> {
        Self::from_sources(BUILTIN.iter().map(|(f, t)| (f.to_string(), t.to_string())))
    }

    /// Every `*.toml` file in `dir` (not recursive), in name order.
    pub fn load_dir(dir: impl AsRef<Path>) -> Result<Self, WorkflowError> {
        let dir = dir.as_ref();
        let read_err = |source| WorkflowError::Read {
            path: dir.display().to_string(),
            source,
        };
        let mut paths = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(read_err)? {
            let path = entry.map_err(read_err)?.path();
            if path.extension().is_some_and(|e| e == "toml") {
                paths.push(path);
            }
        }
        paths.sort();
        let mut sources = Vec::new();
        let mut problems = Vec::new();
        for path in paths {
            let file = path.display().to_string();
            match std::fs::read_to_string(&path) {
                Ok(text) => sources.push((file, text)),
                Err(e) => problems.push(Problem::new(
                    &file,
                    String::new(),
                    &format!("cannot read: {e}"),
                    "",
                )),
            }
        }
        match Self::from_sources(sources) {
            Ok(w) if problems.is_empty() => Ok(w),
            Ok(_) => Err(WorkflowError::Invalid(problems)),
            Err(WorkflowError::Invalid(more)) => {
                problems.extend(more);
                Err(WorkflowError::Invalid(problems))
            }
            Err(e) => Err(e),
        }
    }

    /// Parses and validates `(file name, text)` pairs, reporting every problem in every file.
    pub fn from_sources(
        sources: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, WorkflowError> {
        let mut out = Workflows::default();
        let mut problems = Vec::new();
        for (file, text) in sources {
            let parsed: WorkflowFile = match toml::from_str(&text) {
                Ok(f) => f,
                Err(e) => {
                    let msg = e.to_string().trim_end().replace('\n', "\n    ");
                    problems.push(Problem::new(&file, String::new(), &msg, ""));
                    continue;
                }
            };
            for (name, mut w) in parsed.workflows {
                w.name = name.clone();
                validate_workflow(&file, &w, &mut problems);
                if let Some(first) = out.files.get(&name) {
                    let rule = format!("must be unique, also defined in {first}");
                    problems.push(Problem::new(
                        &file,
                        format!("workflows.{name}"),
                        &rule,
                        &name,
                    ));
                    continue;
                }
                out.files.insert(name.clone(), file.clone());
                out.by_name.insert(name, Arc::new(w));
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(WorkflowError::Invalid(problems))
        }
    }

    /// The workflow called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<WorkflowSpec>> {
        self.by_name.get(name)
    }

    /// Workflow names in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// All workflows, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<WorkflowSpec>> {
        self.by_name.values()
    }

    /// The file a workflow was loaded from.
    pub fn file_of(&self, name: &str) -> Option<&str> {
        self.files.get(name).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped files, read from disk (relative to this source file), parse and validate.
    #[test]
    fn every_shipped_workflow_file_loads() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/topologies/workflows");
        let from_disk = Workflows::load_dir(dir).unwrap_or_else(|e| panic!("{e}"));
        let builtin = Workflows::builtin().unwrap_or_else(|e| panic!("{e}"));
        let disk: Vec<&str> = from_disk.names().collect();
        let built: Vec<&str> = builtin.names().collect();
        assert_eq!(disk, built, "a shipped file is missing from BUILTIN");
        for name in ["investigate-and-remediate", "triage"] {
            assert!(builtin.get(name).is_some(), "{name} missing");
        }
    }

    /// Every `workflow = "..."` in `topologies/patterns.toml` names a shipped workflow, and the
    /// pattern's steps are that workflow's steps with the same agent types (routing reassigns them
    /// per step by name).
    #[test]
    fn pattern_library_workflows_exist_with_matching_steps() {
        #[derive(serde::Deserialize)]
        struct Lib {
            patterns: Vec<Pat>,
        }
        #[derive(serde::Deserialize)]
        struct Pat {
            workflow: String,
            steps: Vec<PatStep>,
        }
        #[derive(serde::Deserialize)]
        struct PatStep {
            name: String,
            agent_type: crate::model::AgentType,
        }
        let text = include_str!("../../topologies/patterns.toml");
        let lib: Lib = toml::from_str(text).expect("patterns.toml parses");
        let builtin = Workflows::builtin().unwrap_or_else(|e| panic!("{e}"));
        assert!(!lib.patterns.is_empty());
        for p in &lib.patterns {
            let w = builtin
                .get(&p.workflow)
                .unwrap_or_else(|| panic!("pattern workflow {} not shipped", p.workflow));
            for s in &p.steps {
                let step = w
                    .step(&s.name)
                    .unwrap_or_else(|| panic!("{}: no step {}", p.workflow, s.name));
                assert_eq!(
                    step.agent_type,
                    Some(s.agent_type),
                    "{}.{}",
                    p.workflow,
                    s.name
                );
            }
        }
    }

    #[test]
    fn validation_reports_every_problem_with_file_path_and_value() {
        let text = r#"
            [workflows.broken]
            on_failure = "compensate"

            [[workflows.broken.steps]]
            name = "observe"
            agent_type = "OBSERVER"
            action = "collect"
            timeout_ms = 1000
            retry = { initial_interval_ms = 0, multiplier = 0.5, max_interval_ms = 100, max_attempts = 0, jitter = 1.5 }
            next = [{ to = "analyse" }, { to = "nowhere", when = { key = "k", equals = "v" } }]

            [[workflows.broken.steps]]
            name = "analyse"
            agent_type = "ANALYST"
            action = "think"
            timeout_ms = 5000
            next = [{ to = "act", when = { key = "root_cause", exists = true, equals = "x" } }, { to = "act" }]

            [[workflows.broken.steps]]
            name = "act"
            agent_type = "SUPERVISOR"
            action = "fix"
            timeout_ms = 0
            compensation = { action = "", max_attempts = 0 }
            next = [{ to = "analyse" }]

            [[workflows.broken.steps]]
            name = "act"
            agent_type = "OBSERVER"
            action = "again"
            timeout_ms = -5
        "#;
        let file = "topologies/workflows/broken.toml";
        let err = Workflows::from_sources([(file.to_string(), text.to_string())]).unwrap_err();
        let WorkflowError::Invalid(problems) = &err else {
            panic!("{err}")
        };
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let expect = [
            "broken.toml: workflows.broken.steps[0].retry.initial_interval_ms: must be > 0, got 0",
            "broken.toml: workflows.broken.steps[0].retry.multiplier: must be >= 1, got 0.5",
            "broken.toml: workflows.broken.steps[0].retry.max_attempts: must be >= 1, got 0",
            "broken.toml: workflows.broken.steps[0].retry.jitter: must be in [0, 1], got 1.5",
            "broken.toml: workflows.broken.steps[0].next[1]: is never taken",
            "broken.toml: workflows.broken.steps[0].next[1].to: must name a step of this workflow, got \"nowhere\"",
            "broken.toml: workflows.broken.steps[1].next[0].when: must set exactly one of",
            "broken.toml: workflows.broken.steps[2].timeout_ms: must be > 0, got 0",
            "broken.toml: workflows.broken.steps[2].compensation.action: must not be empty",
            "broken.toml: workflows.broken.steps[2].compensation.max_attempts: must be >= 1, got 0",
            "broken.toml: workflows.broken.steps[3].name: must be unique, also used by steps[2], got \"act\"",
            "broken.toml: workflows.broken.steps[3].timeout_ms: must be > 0, got -5",
            "broken.toml: workflows.broken.steps: must form no loop without a bound (give one of its edges `max_times`), got analyse -> act -> analyse",
        ];
        for e in expect {
            assert!(
                lines.iter().any(|l| l.contains(e)),
                "missing {e:?} in\n{}",
                lines.join("\n")
            );
        }
        assert!(lines.iter().all(|l| l.starts_with(file)), "{lines:?}");
        // The whole report is in the error's message, one problem per line.
        assert_eq!(err.to_string().lines().count(), problems.len() + 1);
    }

    #[test]
    fn unreachable_steps_and_parse_errors_in_other_files_are_all_reported() {
        let ok = r#"
            [workflows.w]
            [[workflows.w.steps]]
            name = "a"
            agent_type = "OBSERVER"
            action = "look"
            timeout_ms = 10
            [[workflows.w.steps]]
            name = "orphan"
            agent_type = "ANALYST"
            action = "think"
            timeout_ms = 10
        "#;
        let bad = "[workflows.x]\nsteps = [{ name = \"a\", agent_type = \"ROBOT\" }]\n";
        let err = Workflows::from_sources([
            ("one.toml".to_string(), ok.to_string()),
            ("two.toml".to_string(), bad.to_string()),
        ])
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("one.toml: workflows.w.steps[1]: must be reachable from the first step `a`, got \"orphan\""),
            "{err}"
        );
        assert!(err.contains("two.toml: ") && err.contains("ROBOT"), "{err}");
    }
}
