//! Workflow graphs as Mermaid or Graphviz DOT, for `aura topology graph`.
//!
//! Nodes are `n0..nk` in step order (step names may hold characters the formats dislike); each shows
//! the step, its agent type and action, its timeout and attempts, and its compensation if any. A step
//! ends the workflow when it has no edge, or when none of its conditional edges matches, so such steps
//! get an edge to `done` (labelled `otherwise` in the second case).

use std::fmt::Write;

use super::config::{StepSpec, WorkflowSpec};
use super::kinds::StepKind;
use crate::model::AgentType;

impl WorkflowSpec {
    /// A Mermaid `flowchart`.
    pub fn to_mermaid(&self) -> String {
        let mut s = String::new();
        let esc = |t: &str| t.replace('"', "#quot;");
        let _ = writeln!(s, "flowchart TD");
        let _ = writeln!(s, "    %% workflow {}: {}", self.name, self.description);
        let _ = writeln!(s, "    start(({}))", esc(&self.name));
        for (i, step) in self.steps.iter().enumerate() {
            let label = node_label(step).join("<br/>");
            let _ = writeln!(s, "    n{i}[\"{}\"]", esc(&label));
        }
        let _ = writeln!(s, "    done((done))");
        let _ = writeln!(s, "    start --> n0");
        for (i, to, label) in self.edges() {
            let target = to.map_or("done".to_string(), |j| format!("n{j}"));
            let _ = match label {
                Some(l) => writeln!(s, "    n{i} -->|\"{}\"| {target}", esc(&l)),
                None => writeln!(s, "    n{i} --> {target}"),
            };
        }
        s
    }

    /// A Graphviz `digraph`.
    pub fn to_dot(&self) -> String {
        let esc = |t: &str| t.replace('\\', "\\\\").replace('"', "\\\"");
        let mut s = String::new();
        let _ = writeln!(s, "digraph \"{}\" {{", esc(&self.name));
        let _ = writeln!(
            s,
            "    label=\"{}: {}\";",
            esc(&self.name),
            esc(&self.description)
        );
        let _ = writeln!(s, "    rankdir=TB;");
        let _ = writeln!(s, "    node [shape=box, style=rounded];");
        let _ = writeln!(s, "    start [shape=circle, label=\"start\"];");
        let _ = writeln!(s, "    done [shape=doublecircle, label=\"done\"];");
        for (i, step) in self.steps.iter().enumerate() {
            let label: Vec<String> = node_label(step).iter().map(|l| esc(l)).collect();
            let _ = writeln!(s, "    n{i} [label=\"{}\"];", label.join("\\n"));
        }
        let _ = writeln!(s, "    start -> n0;");
        for (i, to, label) in self.edges() {
            let target = to.map_or("done".to_string(), |j| format!("n{j}"));
            let _ = match label {
                Some(l) => writeln!(s, "    n{i} -> {target} [label=\"{}\"];", esc(&l)),
                None => writeln!(s, "    n{i} -> {target};"),
            };
        }
        let _ = writeln!(s, "}}");
        s
    }

    /// Every edge as (from index, to index or `None` for done, label).
    fn edges(&self) -> Vec<(usize, Option<usize>, Option<String>)> {
        let index = |name: &str| self.steps.iter().position(|s| s.name == name);
        let mut out = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            for e in &step.next {
                let mut label = e.when.as_ref().map(|c| c.describe());
                if let Some(m) = e.max_times {
                    let bound = format!("at most {m}x");
                    label = Some(label.map_or(bound.clone(), |l| format!("{l}; {bound}")));
                }
                out.push((i, index(&e.to), label));
            }
            if let Some(to) = step
                .consensus
                .as_ref()
                .and_then(|c| c.on_escalate.as_deref())
            {
                out.push((i, index(to), Some("TIED or NO_QUORUM".into())));
            }
            let has_default = step.next.iter().any(|e| e.when.is_none());
            if step.next.is_empty() {
                out.push((i, None, None));
            } else if !has_default {
                out.push((i, None, Some("otherwise".into())));
            }
        }
        out
    }
}

fn node_label(step: &StepSpec) -> Vec<String> {
    let agent = step.agent_type.map_or("-", agent_type_name);
    let mut lines = vec![step.name.clone()];
    let timing = format!(
        "timeout {} ms, {} attempt(s)",
        step.timeout_ms, step.retry.max_attempts
    );
    let types = |ts: Vec<AgentType>| {
        let names: Vec<&str> = ts.into_iter().map(agent_type_name).collect();
        names.join(", ")
    };
    match step.kind() {
        StepKind::Task => {
            lines.push(format!("{agent}: {}", step.action));
            lines.push(timing);
        }
        StepKind::FanOut => {
            let f = step.fan_out.as_ref().expect("kind");
            let crew = match f.count {
                Some(n) => format!("{n} x {agent}"),
                None => types(f.branches.iter().map(|b| b.agent_type).collect()),
            };
            lines.push(format!("fan-out [{crew}]: {}", step.action));
            lines.push(format!("join {}, deadline {} ms", f.join, step.timeout_ms));
        }
        StepKind::Consensus => {
            let c = step.consensus.as_ref().expect("kind");
            let voters = match c.count {
                Some(n) => format!("{n} x {agent}"),
                None => types(c.voters.iter().map(|v| v.agent_type).collect()),
            };
            lines.push(format!("consensus [{voters}]: {}", step.action));
            lines.push(format!(
                "options {}; quorum {}, weights {:?}, deadline {} ms",
                c.options.join(" | "),
                c.quorum,
                c.weights,
                step.timeout_ms
            ));
        }
        StepKind::Supervisor => {
            let sup = step.supervisor.as_ref().expect("kind");
            lines.push(format!("supervisor {agent}: {}", step.action));
            lines.push(format!(
                "<= {} sub-tasks, join {}, then {}",
                sup.max_subtasks, sup.join, sup.final_action
            ));
            lines.push(timing);
        }
        StepKind::Escalate => {
            let e = step.escalate.as_ref().expect("kind");
            for (layer, p) in [("tactical", &e.tactical), ("strategic", &e.strategic)] {
                let approval = match (&p.approval, &p.on_timeout) {
                    (true, Some(t)) => format!(", approval (timeout: {t})"),
                    _ => String::new(),
                };
                lines.push(format!(
                    "escalate to {layer}: {} {} ({} ms{approval})",
                    agent_type_name(p.agent_type),
                    p.action,
                    p.timeout_ms
                ));
            }
        }
    }
    if let Some(c) = &step.compensation {
        lines.push(format!("undo: {}", c.action));
    }
    lines
}

/// The schema's spelling of an agent type.
pub fn agent_type_name(t: AgentType) -> &'static str {
    match t {
        AgentType::Observer => "OBSERVER",
        AgentType::Analyst => "ANALYST",
        AgentType::Supervisor => "SUPERVISOR",
    }
}

#[cfg(test)]
mod tests {
    use crate::saga::Workflows;

    #[test]
    fn mermaid_and_dot_show_every_step_edge_and_condition() {
        let all = Workflows::builtin().unwrap();
        let w = all.get("investigate-and-remediate").unwrap();
        let m = w.to_mermaid();
        assert!(m.starts_with("flowchart TD\n"), "{m}");
        assert!(m.contains("start --> n0"), "{m}");
        assert!(m.contains("n1 -->|\"risk in [high, critical]\"| n2"), "{m}");
        assert!(m.contains("n1 -->|\"remediation exists\"| n3"), "{m}");
        assert!(m.contains("n1 --> n5"), "{m}");
        assert!(m.contains("n4 --> done"), "{m}");
        assert!(m.contains("SUPERVISOR: apply-remediation"), "{m}");
        assert!(m.contains("undo: revert-remediation"), "{m}");

        let d = w.to_dot();
        assert!(
            d.starts_with("digraph \"investigate-and-remediate\" {"),
            "{d}"
        );
        assert!(d.contains("n2 -> n3 [label=\"approved == true\"];"), "{d}");
        assert!(d.contains("n4 -> done;"), "{d}");
        assert!(d.trim_end().ends_with('}'));
        for (i, s) in w.steps.iter().enumerate() {
            assert!(d.contains(&format!("n{i} [label=\"{}\\n", s.name)), "{d}");
        }

        let leak = all.get("memory-leak-remediation").unwrap().to_mermaid();
        assert!(leak.contains("n1 -->|\"otherwise\"| done"), "{leak}");
    }

    #[test]
    fn coordination_steps_show_their_crew_join_vote_plan_escalation_and_loops() {
        let all = Workflows::builtin().unwrap();
        let cascade = all.get("cascade-containment").unwrap().to_mermaid();
        for want in [
            "consensus [ANALYST, ANALYST, SUPERVISOR]: vote-contain-or-hold",
            "options contain | hold; quorum 2, weights Layer, deadline 60000 ms",
            "n1 -->|\"decision == contain\"| n3",
            "n1 -->|\"TIED or NO_QUORUM\"| n2",
            "escalate to strategic: SUPERVISOR approve-containment (300000 ms, approval (timeout: rejected))",
        ] {
            assert!(cascade.contains(want), "{want:?} in {cascade}");
        }
        let crew = all.get("partition-recovery").unwrap().to_dot();
        assert!(crew.contains("fan-out [OBSERVER, OBSERVER, OBSERVER]: probe-links\\njoin quorum(2), deadline 30000 ms"), "{crew}");
        let plan = all.get("change-rollback").unwrap().to_mermaid();
        assert!(plan.contains("supervisor SUPERVISOR: plan-rollback<br/><= 5 sub-tasks, join all, then confirm-rollback"), "{plan}");
        let looped = all.get("contention-relief").unwrap().to_mermaid();
        assert!(
            looped.contains("n2 -->|\"balanced == false; at most 2x\"| n3"),
            "{looped}"
        );
    }
}
