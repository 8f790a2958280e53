//! The HTTP endpoint: `/metrics` (Prometheus text), `/healthz` (liveness), `/readyz`
//! (readiness: partitions assigned and tables loaded), and `/sagas/{id}`, one saga's state
//! read from the partition task that owns it (see [`crate::runtime::queries`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::watch;

use crate::processor::SAGA_STORE;
use crate::runtime::queries::{Outcome, Unavailable};
use crate::runtime::{Readiness, StateQueries};
use crate::telemetry::Metrics;

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    readiness: Arc<Readiness>,
    queries: Arc<StateQueries>,
}

/// Binds `listen` and serves until `shutdown` turns true. Returns the bound address (useful
/// with port 0) and the server task.
pub async fn serve(
    listen: SocketAddr,
    metrics: Metrics,
    readiness: Arc<Readiness>,
    queries: Arc<StateQueries>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let app = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        // A wildcard, so saga ids holding `/` need no escaping.
        .route("/sagas/{*id}", get(saga))
        .with_state(AppState {
            metrics,
            readiness,
            queries,
        });
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            })
            .await
    });
    Ok((bound, task))
}

async fn metrics_text(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
}

async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    match s.readiness.check() {
        Ok(()) => (
            StatusCode::OK,
            format!("ready: {} partitions\n", s.readiness.assigned()),
        ),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

/// 200 with the state; 404 when the saga is not here (sagas off, not on its partition, or
/// its partition owned by another instance, which the body names); 503 when asking again
/// soon may succeed (starting, restoring, rebalancing).
async fn saga(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let lookup = match s.queries.query(SAGA_STORE, &id).await {
        Ok(lookup) => lookup,
        Err(Unavailable::Off) => {
            let error = "sagas are off on this service ([sagas] enabled = false)";
            return (StatusCode::NOT_FOUND, Json(json!({ "error": error, "saga_id": id })))
                .into_response();
        }
        Err(Unavailable::Starting) => {
            let error = "the saga topics are not set up yet; retry shortly";
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "error": error, "saga_id": id })),
            )
                .into_response();
        }
    };
    let (p, topic) = (lookup.partition, &lookup.routing.topic);
    let (status, error) = match lookup.outcome {
        Outcome::Found(state) => return (StatusCode::OK, Json(state)).into_response(),
        Outcome::Missing => (
            StatusCode::NOT_FOUND,
            format!("no saga {id} on its partition {p} of {topic}, which this instance owns"),
        ),
        Outcome::Elsewhere => {
            let group = &lookup.routing.group;
            let body = json!({
                "error": format!("saga {id} is on partition {p} of {topic}, which this instance does not own"),
                "saga_id": id,
                "partition": p,
                "topic": topic,
                "owned_here": false,
                "hint": format!(
                    "ask the instance that owns partition {p} of {topic}; see the consumer group's \
                     assignment with kafka-consumer-groups --describe --group {group}"
                ),
            });
            return (StatusCode::NOT_FOUND, Json(body)).into_response();
        }
        Outcome::Restoring => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("partition {p} of {topic} is restoring its sagas; retry shortly"),
        ),
        Outcome::Unanswered => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the task of partition {p} of {topic} did not answer (rebalancing?); retry shortly"),
        ),
    };
    let body = json!({
        "error": error,
        "saga_id": id,
        "partition": p,
        "topic": topic,
        "owned_here": true,
    });
    (status, Json(body)).into_response()
}
