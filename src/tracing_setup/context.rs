//! W3C trace context between records and spans: the parent a record's spans take from its
//! `traceparent` header, the child context an output carries, and the trace of the input being
//! processed, which a saga keeps so its timer-driven outputs continue the incident's trace.

use std::cell::RefCell;

use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

/// Creates a pipeline span (target [`super::SPAN_TARGET`]) only when something reads spans;
/// otherwise a disabled span, at the cost of one atomic load.
#[macro_export]
macro_rules! stage_span {
    ($name:literal $(, $($field:tt)*)?) => {
        if $crate::tracing_setup::spans_enabled() {
            tracing::info_span!(target: "aura::span", $name $(, $($field)*)?)
        } else {
            tracing::Span::none()
        }
    };
}

thread_local! {
    static CURRENT_INPUT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f` with `traceparent` as the trace of the input being processed (see [`current`]).
pub fn with_input_trace<R>(traceparent: Option<String>, f: impl FnOnce() -> R) -> R {
    let previous = CURRENT_INPUT.with(|c| c.replace(traceparent));
    let result = f();
    CURRENT_INPUT.with(|c| *c.borrow_mut() = previous);
    result
}

/// The `traceparent` of the input being processed on this thread, if it has one: what a new
/// saga keeps as its trace. Processors stay free of I/O; this is the same kind of ambient
/// context as the current span.
pub fn current_input_trace() -> Option<String> {
    CURRENT_INPUT.with(|c| c.borrow().clone())
}

/// Parses a W3C `traceparent` (`00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`).
pub fn parse(header: &[u8]) -> Option<SpanContext> {
    let text = std::str::from_utf8(header).ok()?;
    let mut parts = text.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version.len() != 2 || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let cx = SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    );
    cx.is_valid().then_some(cx)
}

/// Formats a span context as a `traceparent` value.
pub fn format(cx: &SpanContext) -> String {
    format!(
        "00-{}-{}-{:02x}",
        cx.trace_id(),
        cx.span_id(),
        cx.trace_flags().to_u8()
    )
}

/// Makes `traceparent` the parent of `span` (which must not have been entered yet).
pub fn set_parent(span: &tracing::Span, traceparent: &[u8]) {
    if span.is_disabled() {
        return;
    }
    if let Some(parent) = parse(traceparent) {
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent));
    }
}

/// The `traceparent` of `span` itself, for the records produced inside it; `None` when the
/// span is disabled or export is off.
pub fn of_span(span: &tracing::Span) -> Option<String> {
    if span.is_disabled() {
        return None;
    }
    let cx = span.context();
    let otel = cx.span();
    let sc = otel.span_context();
    sc.is_valid().then(|| format(sc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_round_trips() {
        let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = parse(header.as_bytes()).expect("valid");
        assert_eq!(format(&cx), header);
        assert!(cx.is_remote());
    }

    #[test]
    fn malformed_or_zero_ids_are_no_parent() {
        for bad in [
            "garbage",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473z-00f067aa0ba902b7-01",
        ] {
            assert!(parse(bad.as_bytes()).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_input_trace_is_scoped_to_the_call() {
        assert_eq!(current_input_trace(), None);
        let seen = with_input_trace(Some("t".into()), current_input_trace);
        assert_eq!(seen.as_deref(), Some("t"));
        assert_eq!(current_input_trace(), None);
    }
}
