//! Checks on workflow definitions that serde cannot make. Every problem is reported at once, each
//! naming the file, the path and the value: `triage.toml: workflows.triage.steps[2].timeout_ms: must
//! be > 0, got 0`.

use std::collections::{HashMap, HashSet};
use std::fmt;

use super::config::{Condition, RetryPolicy, StepSpec, WorkflowSpec};
use super::kinds::StepKind;
use super::validate_kinds::check_kind;

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
        let names: Vec<&str> = w.steps.iter().map(|s| s.name.as_str()).collect();
        check_kind(&at, s, &names, &mut p);
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
            if e.max_times == Some(0) {
                p(format!("{at}.max_times"), "must be >= 1", &0);
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
    if let Some(cycle) = find_cycle(w, &index, false) {
        let path = format!("{root}.steps");
        let rule = "must form no loop without a bound (give one of its edges `max_times`)";
        p(path, rule, &cycle.join(" -> "));
    }
    // Coordination steps number their commands per visit, so they cannot run twice.
    for (i, s) in w.steps.iter().enumerate() {
        let looped = on_loop(w, &index, i);
        if looped && s.compensation.is_some() {
            let rule = "must not be set on a step in a loop (each visit's undo would share one command id)";
            p(format!("{root}.steps[{i}].compensation"), rule, &"a table");
        }
        if s.kind() != StepKind::Task && looped {
            let rule = format!(
                "must not be on a loop: {} steps run once per saga",
                s.kind().name()
            );
            p(format!("{root}.steps[{i}]"), &rule, &quoted(&s.name));
        }
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

/// The steps `s` can go to: its edges (without the bounded ones unless `bounded`) and a
/// consensus's `on_escalate`.
pub(crate) fn successors(s: &StepSpec, bounded: bool) -> Vec<&str> {
    let edges = s.next.iter().filter(|e| bounded || e.max_times.is_none());
    let escalate = s.consensus.as_ref().and_then(|c| c.on_escalate.as_deref());
    edges.map(|e| e.to.as_str()).chain(escalate).collect()
}

/// Whether step `i` can reach itself again.
fn on_loop(w: &WorkflowSpec, index: &HashMap<&str, usize>, i: usize) -> bool {
    let mut seen = HashSet::new();
    let mut todo = vec![i];
    while let Some(k) = todo.pop() {
        for to in successors(&w.steps[k], true) {
            match index.get(to) {
                Some(&j) if j == i => return true,
                Some(&j) if seen.insert(j) => todo.push(j),
                _ => {}
            }
        }
    }
    false
}

/// The first cycle found (through unbounded edges unless `bounded`), as step names from its
/// start back to it, or `None` for a DAG.
fn find_cycle(
    w: &WorkflowSpec,
    index: &HashMap<&str, usize>,
    bounded: bool,
) -> Option<Vec<String>> {
    // 0 = unseen, 1 = on the DFS stack, 2 = done.
    let mut mark = vec![0u8; w.steps.len()];
    let mut stack = Vec::new();
    fn dfs(
        i: usize,
        w: &WorkflowSpec,
        index: &HashMap<&str, usize>,
        bounded: bool,
        mark: &mut [u8],
        stack: &mut Vec<usize>,
    ) -> Option<Vec<String>> {
        mark[i] = 1;
        stack.push(i);
        for to in successors(&w.steps[i], bounded) {
            let Some(&j) = index.get(to) else {
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
                if let Some(c) = dfs(j, w, index, bounded, mark, stack) {
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
            dfs(i, w, index, bounded, &mut mark, &mut stack)
        } else {
            None
        }
    })
}

fn reachable(w: &WorkflowSpec, index: &HashMap<&str, usize>) -> HashSet<usize> {
    let mut seen = HashSet::from([0]);
    let mut todo = vec![0];
    while let Some(i) = todo.pop() {
        for to in successors(&w.steps[i], true) {
            if let Some(&j) = index.get(to) {
                if seen.insert(j) {
                    todo.push(j);
                }
            }
        }
    }
    seen
}
