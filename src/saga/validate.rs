//! Checks on workflow definitions that serde cannot make. Every problem is reported at once, each
//! naming the file, the path and the value: `triage.toml: workflows.triage.steps[2].timeout_ms: must
//! be > 0, got 0`.

use std::collections::{HashMap, HashSet};
use std::fmt;

use super::config::{Condition, RetryPolicy, WorkflowSpec};

/// One thing wrong with one field of one workflow file.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The file, as given to the loader (`topologies/workflows/triage.toml`).
    pub file: String,
    /// Dotted path of the field (`workflows.triage.steps[2].timeout_ms`); empty for a parse error.
    pub path: String,
    /// What the field must be instead.
    pub rule: String,
    /// What the field held.
    pub value: String,
}

impl Problem {
    pub fn new(file: &str, path: String, rule: &str, value: impl fmt::Display) -> Self {
        Self {
            file: file.into(),
            path,
            rule: rule.into(),
            value: value.to_string(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.file, self.rule)
        } else {
            write!(
                f,
                "{}: {}: {}, got {}",
                self.file, self.path, self.rule, self.value
            )
        }
    }
}

/// Checks one workflow, pushing every problem found to `problems`.
pub fn validate_workflow(file: &str, w: &WorkflowSpec, problems: &mut Vec<Problem>) {
    let root = format!("workflows.{}", w.name);
    let mut p = |path: String, rule: &str, value: &dyn fmt::Display| {
        problems.push(Problem::new(file, path, rule, value));
    };
    if !valid_name(&w.name) {
        p(root.clone(), NAME_RULE, &quoted(&w.name));
    }
    if w.steps.is_empty() {
        p(
            format!("{root}.steps"),
            "must list at least one step",
            &"[]",
        );
        return;
    }
    let mut index: HashMap<&str, usize> = HashMap::new();
    for (i, s) in w.steps.iter().enumerate() {
        let at = format!("{root}.steps[{i}]");
        if !valid_name(&s.name) {
            p(format!("{at}.name"), NAME_RULE, &quoted(&s.name));
        }
        // The first of duplicate names wins, so edges and cycles are checked against it.
        let first = *index.entry(&s.name).or_insert(i);
        if first != i {
            let rule = format!("must be unique, also used by steps[{first}]");
            p(format!("{at}.name"), &rule, &quoted(&s.name));
        }
        if s.action.trim().is_empty() {
            p(
                format!("{at}.action"),
                "must not be empty",
                &quoted(&s.action),
            );
        }
        if s.timeout_ms <= 0 {
            p(format!("{at}.timeout_ms"), "must be > 0", &s.timeout_ms);
        }
        check_retry(&format!("{at}.retry"), &s.retry, &mut p);
        if let Some(c) = &s.compensation {
            let at = format!("{at}.compensation");
            if c.action.trim().is_empty() {
                p(
                    format!("{at}.action"),
                    "must not be empty",
                    &quoted(&c.action),
                );
            }
            if let Some(t) = c.timeout_ms.filter(|t| *t <= 0) {
                p(format!("{at}.timeout_ms"), "must be > 0", &t);
            }
            if let Some(n) = c.max_attempts.filter(|n| *n < 1) {
                p(format!("{at}.max_attempts"), "must be >= 1", &n);
            }
        }
        let mut default_at = None;
        for (j, e) in s.next.iter().enumerate() {
            let at = format!("{at}.next[{j}]");
            if let Some(d) = default_at {
                let rule = format!("is never taken: next[{d}] has no `when` and always matches");
                p(at.clone(), &rule, &quoted(&e.to));
            }
            match &e.when {
                None => default_at = default_at.or(Some(j)),
                Some(c) => check_condition(&format!("{at}.when"), c, &mut p),
            }
        }
    }
    // Edges need the full name index, so they are checked once every step is known.
    for (i, s) in w.steps.iter().enumerate() {
        for (j, e) in s.next.iter().enumerate() {
            if !index.contains_key(e.to.as_str()) {
                let path = format!("{root}.steps[{i}].next[{j}].to");
                p(path, "must name a step of this workflow", &quoted(&e.to));
            }
        }
    }
    if let Some(cycle) = find_cycle(w, &index) {
        let path = format!("{root}.steps");
        p(
            path,
            "must form no cycle (the graph is a DAG)",
            &cycle.join(" -> "),
        );
    }
    let reachable = reachable(w, &index);
    for (i, s) in w.steps.iter().enumerate() {
        if !reachable.contains(&i) {
            let rule = format!(
                "must be reachable from the first step `{}`",
                w.steps[0].name
            );
            p(format!("{root}.steps[{i}]"), &rule, &quoted(&s.name));
        }
    }
}

const NAME_RULE: &str = "must be non-empty letters, digits, '-', '_' or '.'";

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn quoted(s: &str) -> String {
    format!("{s:?}")
}

fn check_retry(at: &str, r: &RetryPolicy, p: &mut impl FnMut(String, &str, &dyn fmt::Display)) {
    if r.initial_interval_ms <= 0 {
        p(
            format!("{at}.initial_interval_ms"),
            "must be > 0",
            &r.initial_interval_ms,
        );
    }
    if r.max_interval_ms <= 0 {
        p(
            format!("{at}.max_interval_ms"),
            "must be > 0",
            &r.max_interval_ms,
        );
    } else if r.max_interval_ms < r.initial_interval_ms {
        let rule = format!("must be >= initial_interval_ms ({})", r.initial_interval_ms);
        p(format!("{at}.max_interval_ms"), &rule, &r.max_interval_ms);
    }
    if r.multiplier.is_nan() || r.multiplier < 1.0 {
        p(format!("{at}.multiplier"), "must be >= 1", &r.multiplier);
    }
    if r.max_attempts < 1 {
        p(
            format!("{at}.max_attempts"),
            "must be >= 1",
            &r.max_attempts,
        );
    }
    if !(0.0..=1.0).contains(&r.jitter) {
        p(format!("{at}.jitter"), "must be in [0, 1]", &r.jitter);
    }
}

fn check_condition(at: &str, c: &Condition, p: &mut impl FnMut(String, &str, &dyn fmt::Display)) {
    if c.key.is_empty() {
        p(format!("{at}.key"), "must not be empty", &"\"\"");
    }
    let set = [c.equals.is_some(), c.one_of.is_some(), c.exists.is_some()];
    let n = set.iter().filter(|b| **b).count();
    if n != 1 {
        let rule = "must set exactly one of `equals`, `one_of`, `exists`";
        p(at.to_string(), rule, &format!("{n} set"));
    }
}

/// The first cycle found, as step names from its start back to it, or `None` for a DAG.
fn find_cycle(w: &WorkflowSpec, index: &HashMap<&str, usize>) -> Option<Vec<String>> {
    // 0 = unseen, 1 = on the DFS stack, 2 = done.
    let mut mark = vec![0u8; w.steps.len()];
    let mut stack = Vec::new();
    fn dfs(
        i: usize,
        w: &WorkflowSpec,
        index: &HashMap<&str, usize>,
        mark: &mut [u8],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<String>> {
        mark[i] = 1;
        stack.push(i);
        for e in &w.steps[i].next {
            let Some(&j) = index.get(e.to.as_str()) else {
                continue;
            };
            if mark[j] == 1 {
                let from = stack.iter().position(|&k| k == j).unwrap_or(0);
                let mut names: Vec<String> = stack[from..]
                    .iter()
                    .map(|&k| w.steps[k].name.clone())
                    .collect();
                names.push(w.steps[j].name.clone());
                return Some(names);
            }
            if mark[j] == 0 {
                if let Some(c) = dfs(j, w, index, mark, stack) {
                    return Some(c);
                }
            }
        }
        stack.pop();
        mark[i] = 2;
        None
    }
    (0..w.steps.len()).find_map(|i| {
        if mark[i] == 0 {
            dfs(i, w, index, &mut mark, &mut stack)
        } else {
            None
        }
    })
}

fn reachable(w: &WorkflowSpec, index: &HashMap<&str, usize>) -> HashSet<usize> {
    let mut seen = HashSet::from([0]);
    let mut todo = vec![0];
    while let Some(i) = todo.pop() {
        for e in &w.steps[i].next {
            if let Some(&j) = index.get(e.to.as_str()) {
                if seen.insert(j) {
                    todo.push(j);
                }
            }
        }
    }
    seen
}
