//! W3C trace context (`traceparent`) on every record, so one anomaly can be followed to every
//! output it caused.

use std::hash::{DefaultHasher, Hash, Hasher};

pub const TRACEPARENT: &str = "traceparent";

/// The `traceparent` for an output: the input's trace id when it carried one, otherwise a
/// trace id derived from the correlation id (so unrelated producers still line up), with a
/// span id derived from the output's own identity.
pub fn traceparent(input: Option<&[u8]>, correlation_id: &str, output_id: &str) -> String {
    let trace_id = input
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(parse_trace_id)
        .map(str::to_owned)
        .unwrap_or_else(|| {
            format!(
                "{:016x}{:016x}",
                hash(&("aura", correlation_id)),
                hash(&correlation_id)
            )
        });
    format!("00-{trace_id}-{:016x}-01", hash(&output_id).max(1))
}

/// The `traceparent` of an agent's answer to a command whose header was `command_trace`: with
/// spans on, an `agent answer` span, child of the command's context (exported like any other);
/// without, the command's trace id with a span id of the answer's own.
pub fn answer_trace(command_trace: Option<&[u8]>, correlation_id: &str, answer_id: &str) -> String {
    let span = crate::stage_span!("agent answer", answer_id);
    if let Some(header) = command_trace {
        crate::tracing_setup::context::set_parent(&span, header);
    }
    crate::tracing_setup::context::of_span(&span)
        .unwrap_or_else(|| traceparent(command_trace, correlation_id, answer_id))
}

fn parse_trace_id(header: &str) -> Option<&str> {
    let mut parts = header.split('-');
    let (_version, trace) = (parts.next()?, parts.next()?);
    (trace.len() == 32 && trace.bytes().all(|b| b.is_ascii_hexdigit())).then_some(trace)
}

fn hash<T: Hash>(value: &T) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_input_trace_id_is_kept() {
        let input = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let out = traceparent(Some(input), "c", "cmd-1");
        assert!(
            out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{out}"
        );
        assert_eq!(out.len(), 55);
    }

    #[test]
    fn without_one_the_trace_follows_the_correlation_id() {
        assert_eq!(
            traceparent(None, "c", "x")[..35],
            traceparent(Some(b"garbage"), "c", "y")[..35]
        );
    }
}
