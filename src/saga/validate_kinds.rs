//! Checks on the coordination step kinds ([`super::kinds`]), each problem naming the file, the
//! path and the value, like [`super::validate`]'s.

use std::fmt;

use super::config::StepSpec;
use super::kinds::{Join, LayerPolicy, StepKind, MAX_BRANCHES};

type Report<'a> = dyn FnMut(String, &str, &dyn fmt::Display) + 'a;

fn quoted(s: &str) -> String {
    format!("{s:?}")
}

/// Checks step `s` at path `at` (`workflows.w.steps[2]`), given the names of the workflow's steps.
pub fn check_kind(at: &str, s: &StepSpec, names: &[&str], p: &mut Report<'_>) {
    let tables = [
        s.fan_out.is_some(),
        s.consensus.is_some(),
        s.supervisor.is_some(),
        s.escalate.is_some(),
    ];
    let n = tables.iter().filter(|t| **t).count();
    if n > 1 {
        let rule = "must carry at most one of `fan_out`, `consensus`, `supervisor`, `escalate`";
        p(at.to_string(), rule, &format!("{n} tables"));
    }
    let kind = s.kind();
    if kind != StepKind::Escalate {
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
    }
    let needs_agent = match kind {
        StepKind::Task | StepKind::Supervisor => true,
        StepKind::FanOut => s.fan_out.as_ref().is_some_and(|f| f.count.is_some()),
        StepKind::Consensus => s.consensus.as_ref().is_some_and(|c| c.count.is_some()),
        StepKind::Escalate => false,
    };
    if needs_agent && s.agent_type.is_none() {
        let rule = format!(
            "must be set for a {} step{}",
            kind.name(),
            if kind == StepKind::FanOut || kind == StepKind::Consensus {
                " that gives a `count`"
            } else {
                ""
            }
        );
        p(format!("{at}.agent_type"), &rule, &"nothing");
    }
    if s.compensation.is_some() && matches!(kind, StepKind::Consensus | StepKind::Escalate) {
        let rule = format!(
            "must not be set: a {} step has nothing to undo",
            kind.name()
        );
        p(format!("{at}.compensation"), &rule, &"a table");
    }
    if let Some(f) = &s.fan_out {
        let at = format!("{at}.fan_out");
        let size = crew_size(&at, f.branches.len(), f.count, "branches", p);
        for (j, b) in f.branches.iter().enumerate() {
            if b.action.as_deref().is_some_and(|a| a.trim().is_empty()) {
                p(
                    format!("{at}.branches[{j}].action"),
                    "must not be empty",
                    &"\"\"",
                );
            }
        }
        check_join(&format!("{at}.join"), &f.join, size, p);
    }
    if let Some(c) = &s.consensus {
        let at = format!("{at}.consensus");
        if c.options.len() < 2 {
            p(
                format!("{at}.options"),
                "must list at least two options",
                &c.options.len(),
            );
        }
        for (j, o) in c.options.iter().enumerate() {
            if o.trim().is_empty() || o.contains(',') {
                let rule = "must be non-empty, without ','";
                p(format!("{at}.options[{j}]"), rule, &quoted(o));
            } else if c.options[..j].contains(o) {
                p(format!("{at}.options[{j}]"), "must be unique", &quoted(o));
            }
        }
        let size = crew_size(&at, c.voters.len(), c.count, "voters", p);
        if c.quorum < 1 || size.is_some_and(|n| c.quorum > n) {
            let rule = format!("must be in 1..={}", size.unwrap_or(MAX_BRANCHES));
            p(format!("{at}.quorum"), &rule, &c.quorum);
        }
        if !(c.max_weight.is_finite() && c.max_weight > 0.0) {
            p(format!("{at}.max_weight"), "must be > 0", &c.max_weight);
        }
        for (j, v) in c.voters.iter().enumerate() {
            if !(v.weight.is_finite() && v.weight > 0.0) {
                p(format!("{at}.voters[{j}].weight"), "must be > 0", &v.weight);
            }
        }
        if let Some(e) = &c.on_escalate {
            if !names.contains(&e.as_str()) || *e == s.name {
                let rule = "must name another step of this workflow";
                p(format!("{at}.on_escalate"), rule, &quoted(e));
            }
        }
        for (j, e) in s.next.iter().enumerate() {
            let Some(w) = &e.when else { continue };
            let at = format!("{}.next[{j}].when", at.trim_end_matches(".consensus"));
            if w.key != "decision" {
                let rule = "must test `decision`, the only output of a consensus step";
                p(format!("{at}.key"), rule, &quoted(&w.key));
            }
            let values = w.equals.iter().chain(w.one_of.iter().flatten());
            for v in values.filter(|v| !c.options.contains(v)) {
                p(
                    at.clone(),
                    "must test one of the step's options",
                    &quoted(v),
                );
            }
        }
    }
    if let Some(sup) = &s.supervisor {
        let at = format!("{at}.supervisor");
        if !(1..=MAX_BRANCHES).contains(&sup.max_subtasks) {
            let rule = format!("must be in 1..={MAX_BRANCHES}");
            p(format!("{at}.max_subtasks"), &rule, &sup.max_subtasks);
        }
        if sup.final_action.trim().is_empty() {
            p(format!("{at}.final_action"), "must not be empty", &"\"\"");
        }
        let bound = sup.max_subtasks.clamp(1, MAX_BRANCHES);
        check_join(&format!("{at}.join"), &sup.join, Some(bound), p);
    }
    if let Some(e) = &s.escalate {
        let at = format!("{at}.escalate");
        check_policy(&format!("{at}.tactical"), &e.tactical, p);
        check_policy(&format!("{at}.strategic"), &e.strategic, p);
    }
}

/// The crew's size, once it is given exactly one way and within bounds.
fn crew_size(
    at: &str,
    listed: usize,
    count: Option<usize>,
    field: &str,
    p: &mut Report<'_>,
) -> Option<usize> {
    let rule = format!("must be in 1..={MAX_BRANCHES}");
    match (listed, count) {
        (0, Some(n)) if (1..=MAX_BRANCHES).contains(&n) => Some(n),
        (0, Some(n)) => {
            p(format!("{at}.count"), &rule, &n);
            None
        }
        (0, None) => {
            let rule = format!("must list `{field}` or give a `count`");
            p(at.to_string(), &rule, &"neither");
            None
        }
        (_, Some(_)) => {
            let rule = format!("must list `{field}` or give a `count`, not both");
            p(at.to_string(), &rule, &"both");
            None
        }
        (n, None) if n > MAX_BRANCHES => {
            p(
                format!("{at}.{field}"),
                &format!("must list at most {MAX_BRANCHES}"),
                &n,
            );
            None
        }
        (n, None) => Some(n),
    }
}

fn check_join(at: &str, text: &str, size: Option<usize>, p: &mut Report<'_>) {
    match (Join::parse(text), size) {
        (None, _) => p(
            at.to_string(),
            "must be `all`, `any` or `quorum(k)` with k >= 1",
            &quoted(text),
        ),
        (Some(Join::Quorum(k)), Some(n)) if k > n => {
            let rule = format!("must need at most the {n} branches there are");
            p(at.to_string(), &rule, &quoted(text));
        }
        _ => {}
    }
}

fn check_policy(at: &str, policy: &LayerPolicy, p: &mut Report<'_>) {
    if policy.action.trim().is_empty() {
        p(
            format!("{at}.action"),
            "must not be empty",
            &quoted(&policy.action),
        );
    }
    if policy.timeout_ms <= 0 {
        p(
            format!("{at}.timeout_ms"),
            "must be > 0",
            &policy.timeout_ms,
        );
    }
    match (policy.approval, policy.on_timeout.as_deref()) {
        (true, Some("approved" | "rejected")) | (false, None) => {}
        (true, None) => {
            let rule = "must be set (`approved` or `rejected`) when `approval` is true";
            p(format!("{at}.on_timeout"), rule, &"nothing");
        }
        (true, Some(v)) => p(
            format!("{at}.on_timeout"),
            "must be `approved` or `rejected`",
            &quoted(v),
        ),
        (false, Some(v)) => {
            let rule = "must not be set without `approval = true`";
            p(format!("{at}.on_timeout"), rule, &quoted(v));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::saga::{WorkflowError, Workflows};

    #[test]
    fn every_problem_of_every_kind_is_reported_with_file_path_and_value() {
        let text = r#"
            [workflows.k]
            [[workflows.k.steps]]
            name = "crew"
            action = "look"
            timeout_ms = 1000
            next = [{ to = "vote" }]
            fan_out = { branches = [{ agent_type = "OBSERVER", action = "" }], count = 2, join = "most" }

            [[workflows.k.steps]]
            name = "vote"
            action = "choose"
            timeout_ms = 1000
            compensation = { action = "unvote" }
            next = [{ to = "plan", when = { key = "risk", equals = "high" } }, { to = "plan", when = { key = "decision", equals = "maybe" } }]
            consensus = { options = ["go", "go"], count = 3, quorum = 4, max_weight = 0.0, on_escalate = "nowhere" }

            [[workflows.k.steps]]
            name = "plan"
            action = "plan"
            timeout_ms = 1000
            next = [{ to = "up" }]
            supervisor = { max_subtasks = 9, join = "quorum(3)", final_action = "" }

            [[workflows.k.steps]]
            name = "up"
            next = [{ to = "crew", max_times = 2 }]
            [workflows.k.steps.escalate]
            tactical = { agent_type = "ANALYST", action = "", timeout_ms = 0, on_timeout = "approved" }
            strategic = { agent_type = "SUPERVISOR", action = "approve", timeout_ms = 10, approval = true }
        "#;
        let err = Workflows::from_sources([("k.toml".to_string(), text.to_string())]).unwrap_err();
        let WorkflowError::Invalid(problems) = &err else {
            panic!("{err}")
        };
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        let expect = [
            "k.toml: workflows.k.steps[0].fan_out: must list `branches` or give a `count`, not both, got both",
            "k.toml: workflows.k.steps[0].fan_out.branches[0].action: must not be empty",
            "k.toml: workflows.k.steps[0].fan_out.join: must be `all`, `any` or `quorum(k)` with k >= 1, got \"most\"",
            "k.toml: workflows.k.steps[1].agent_type: must be set for a consensus step that gives a `count`, got nothing",
            "k.toml: workflows.k.steps[1].compensation: must not be set: a consensus step has nothing to undo",
            "k.toml: workflows.k.steps[1].consensus.options[1]: must be unique, got \"go\"",
            "k.toml: workflows.k.steps[1].consensus.quorum: must be in 1..=3, got 4",
            "k.toml: workflows.k.steps[1].consensus.max_weight: must be > 0, got 0",
            "k.toml: workflows.k.steps[1].consensus.on_escalate: must name another step of this workflow, got \"nowhere\"",
            "k.toml: workflows.k.steps[1].next[0].when.key: must test `decision`, the only output of a consensus step, got \"risk\"",
            "k.toml: workflows.k.steps[1].next[1].when: must test one of the step's options, got \"maybe\"",
            "k.toml: workflows.k.steps[2].agent_type: must be set for a supervisor step, got nothing",
            "k.toml: workflows.k.steps[2].supervisor.max_subtasks: must be in 1..=8, got 9",
            "k.toml: workflows.k.steps[2].supervisor.final_action: must not be empty",
            "k.toml: workflows.k.steps[3].escalate.tactical.action: must not be empty",
            "k.toml: workflows.k.steps[3].escalate.tactical.timeout_ms: must be > 0, got 0",
            "k.toml: workflows.k.steps[3].escalate.tactical.on_timeout: must not be set without `approval = true`, got \"approved\"",
            "k.toml: workflows.k.steps[3].escalate.strategic.on_timeout: must be set (`approved` or `rejected`) when `approval` is true, got nothing",
            "k.toml: workflows.k.steps[0]: must not be on a loop: fan_out steps run once per saga, got \"crew\"",
            "k.toml: workflows.k.steps[3]: must not be on a loop: escalate steps run once per saga, got \"up\"",
        ];
        for e in expect {
            assert!(
                lines.iter().any(|l| l.starts_with(e)),
                "missing {e:?} in\n{}",
                lines.join("\n")
            );
        }
        // The loop is bounded, so it is no cycle problem; only its coordination steps are.
        assert!(
            !lines.iter().any(|l| l.contains("without a bound")),
            "{lines:?}"
        );
    }

    #[test]
    fn a_loop_without_a_bound_is_refused_and_naming_one_is_enough() {
        let text = |bound: &str| {
            format!(
                r#"
                [workflows.l]
                [[workflows.l.steps]]
                name = "fix"
                agent_type = "SUPERVISOR"
                action = "fix"
                timeout_ms = 10
                next = [{{ to = "check" }}]
                [[workflows.l.steps]]
                name = "check"
                agent_type = "OBSERVER"
                action = "check"
                timeout_ms = 10
                next = [{{ to = "fix", when = {{ key = "ok", equals = "false" }}{bound} }}]
                "#
            )
        };
        let err = Workflows::from_sources([("l.toml".into(), text(""))]).unwrap_err();
        assert!(
            err.to_string().contains("l.toml: workflows.l.steps: must form no loop without a bound (give one of its edges `max_times`), got fix -> check -> fix"),
            "{err}"
        );
        Workflows::from_sources([("l.toml".into(), text(", max_times = 3"))])
            .unwrap_or_else(|e| panic!("{e}"));
        let err =
            Workflows::from_sources([("l.toml".into(), text(", max_times = 0"))]).unwrap_err();
        assert!(
            err.to_string()
                .contains("steps[1].next[0].max_times: must be >= 1, got 0"),
            "{err}"
        );
    }
}
