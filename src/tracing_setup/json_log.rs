//! `--log-format json`: one JSON object per line on stderr, fields first, then the ids of the
//! current span's OpenTelemetry context so a log line can be found from its trace and back.
//!
//! A layer of its own rather than a `fmt` formatter: reading a span's OpenTelemetry context
//! needs the dispatcher, which a formatter cannot reach while an event is being dispatched.

use std::io::Write as _;

use opentelemetry::trace::TraceContextExt as _;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Dispatch, Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime as _, SystemTime};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

#[derive(Default)]
pub struct JsonLog {
    dispatch: std::sync::OnceLock<tracing::dispatcher::WeakDispatch>,
}

impl<S> Layer<S> for JsonLog
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, subscriber: &Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Map::new();
        event.record(&mut JsonFields(&mut fields));
        let meta = event.metadata();
        let mut timestamp = String::new();
        let _ = SystemTime.format_time(&mut Writer::new(&mut timestamp));
        let mut line = Map::new();
        line.insert("timestamp".into(), timestamp.into());
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        if let Some(message) = fields.remove("message") {
            line.insert("message".into(), message);
        }
        line.insert("fields".into(), Value::Object(fields));
        if let Some(span) = ctx.event_span(event) {
            line.insert("span".into(), span.name().into());
            let dispatch = self.dispatch.get().and_then(|d| d.upgrade());
            if let Some(cx) =
                dispatch.and_then(|d| tracing_opentelemetry::get_otel_context(&span.id(), &d))
            {
                let otel = cx.span();
                let ids = otel.span_context();
                if ids.is_valid() {
                    line.insert("trace_id".into(), ids.trace_id().to_string().into());
                    line.insert("span_id".into(), ids.span_id().to_string().into());
                }
            }
        }
        let mut bytes = serde_json::to_vec(&Value::Object(line)).unwrap_or_default();
        bytes.push(b'\n');
        // One write per line, so lines from several threads never interleave.
        let _ = std::io::stderr().lock().write_all(&bytes);
    }
}

/// Collects an event's fields as JSON values, keeping numbers and booleans typed.
struct JsonFields<'a>(&'a mut Map<String, Value>);

impl Visit for JsonFields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
}
