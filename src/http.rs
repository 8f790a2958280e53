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
            return (
                StatusCode::NOT_FOUND,
                Json(json!({ "error": error, "saga_id": id })),
            )
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
            format!(
                "the task of partition {p} of {topic} did not answer (rebalancing?); retry shortly"
            ),
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

#[cfg(test)]
mod tests {
    use tokio::sync::mpsc;

    use crate::runtime::partitioner::partition_for;
    use crate::runtime::queries::{KeyRouting, Query};

    use super::*;

    const TOPIC: &str = "app-saga-triggers-repartition";

    async fn start(queries: Arc<StateQueries>) -> (String, watch::Sender<bool>) {
        let (stop, shutdown) = watch::channel(false);
        let listen = "127.0.0.1:0".parse().unwrap();
        let readiness = Arc::new(Readiness::default());
        let (bound, _) = serve(listen, Metrics::new(), readiness, queries, shutdown)
            .await
            .unwrap();
        (format!("http://{bound}"), stop)
    }

    async fn get(url: String) -> (u16, serde_json::Value) {
        let response = reqwest::get(url).await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    #[tokio::test]
    async fn saga_queries_answer_here_point_elsewhere_or_say_sagas_are_off() {
        let queries = StateQueries::new();
        let (base, _stop) = start(queries.clone()).await;
        let (status, body) = get(format!("{base}/sagas/x")).await;
        assert_eq!(status, 503, "{body}");

        queries.serve(
            SAGA_STORE,
            KeyRouting {
                topic: TOPIC.into(),
                partitions: 3,
                group: "app".into(),
                partition_key: |k| k,
            },
        );
        // An id with a slash: the route takes the rest of the path.
        let here = "src/a@7";
        let p = partition_for(here.as_bytes(), 3);
        let task = queries.register(&[SAGA_STORE], p);
        let (status, _) = get(format!("{base}/sagas/{here}")).await;
        assert_eq!(status, 503, "restoring");
        let (tx, mut rx) = mpsc::channel::<Query>(1);
        tokio::spawn(async move {
            while let Some(q) = rx.recv().await {
                let found = (q.key == "src/a@7").then(|| json!({ "status": "RUNNING" }));
                let _ = q.reply.send(found);
            }
        });
        task.ready(tx);
        let (status, body) = get(format!("{base}/sagas/{here}")).await;
        assert_eq!((status, &body["status"]), (200, &json!("RUNNING")));

        let missing = (0..)
            .map(|i| format!("m{i}"))
            .find(|k| partition_for(k.as_bytes(), 3) == p)
            .unwrap();
        let (status, body) = get(format!("{base}/sagas/{missing}")).await;
        assert_eq!((status, &body["owned_here"]), (404, &json!(true)), "{body}");

        let away = (0..)
            .map(|i| format!("e{i}"))
            .find(|k| partition_for(k.as_bytes(), 3) != p)
            .unwrap();
        let (status, body) = get(format!("{base}/sagas/{away}")).await;
        let owner = partition_for(away.as_bytes(), 3);
        assert_eq!(status, 404);
        assert_eq!(body["partition"], owner);
        assert_eq!(body["topic"], TOPIC);
        let hint = body["hint"].as_str().unwrap();
        assert!(
            hint.contains(&format!("partition {owner} of {TOPIC}")),
            "{hint}"
        );

        let off = StateQueries::new();
        off.switch_off(SAGA_STORE);
        let (base, _stop) = start(off).await;
        let (status, body) = get(format!("{base}/sagas/{here}")).await;
        assert_eq!(status, 404);
        assert!(body["error"].as_str().unwrap().contains("sagas are off"));
    }
}
