//! The guard and the connection limits, on a real socket.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::runtime::partitioner::partition_for;
use crate::runtime::queries::{KeyRouting, Query};
use crate::security::Secret;

use super::*;

const TOKEN: &str = "s3cret-http-token";

async fn start(guard: Guard, queries: Arc<StateQueries>) -> (String, watch::Sender<bool>) {
    let (stop, shutdown) = watch::channel(false);
    let listen = "127.0.0.1:0".parse().unwrap();
    let readiness = Arc::new(Readiness::default());
    let (bound, _) = serve(listen, guard, Metrics::new(), readiness, queries, shutdown)
        .await
        .unwrap();
    (bound.to_string(), stop)
}

fn guarded(timeout_ms: u64) -> Guard {
    Guard {
        token: Some(Secret::new(TOKEN)),
        request_timeout: Duration::from_millis(timeout_ms),
    }
}

async fn status(url: &str, token: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn sagas_need_the_token_and_the_probes_stay_open() {
    let queries = StateQueries::new();
    queries.switch_off(SAGA_STORE);
    let (addr, _stop) = start(guarded(5_000), queries).await;
    let base = format!("http://{addr}");
    assert_eq!(status(&format!("{base}/sagas/a@1"), None).await, 401);
    assert_eq!(
        status(&format!("{base}/sagas/a@1"), Some("wrong")).await,
        401
    );
    let response = reqwest::get(format!("{base}/sagas/a@1")).await.unwrap();
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let body = response.text().await.unwrap();
    assert!(!body.contains(TOKEN), "{body}");
    // With the token the query goes through (sagas are off here: 404).
    assert_eq!(status(&format!("{base}/sagas/a@1"), Some(TOKEN)).await, 404);
    assert_eq!(status(&format!("{base}/metrics"), None).await, 200);
    assert_eq!(status(&format!("{base}/healthz"), None).await, 200);
    assert_eq!(
        status(&format!("{base}/readyz"), None).await,
        503,
        "open, and not ready"
    );
}

#[tokio::test]
async fn a_query_to_a_stuck_partition_task_answers_503_in_bounded_time() {
    let queries = StateQueries::new();
    queries.serve(
        SAGA_STORE,
        KeyRouting {
            topic: "t".into(),
            partitions: 1,
            group: "g".into(),
            partition_key: |k| k,
        },
    );
    let task = queries.register(&[SAGA_STORE], partition_for(b"a@1", 1));
    // A task that never reads its queue, and whose queue is already full.
    let (tx, _never_read) = mpsc::channel::<Query>(1);
    let (reply, _) = oneshot::channel();
    tx.try_send(Query {
        store: SAGA_STORE.into(),
        key: "x".into(),
        reply,
    })
    .unwrap();
    task.ready(tx);
    let (addr, _stop) = start(guarded(300), queries).await;
    let started = Instant::now();
    let code = status(&format!("http://{addr}/sagas/a@1"), Some(TOKEN)).await;
    assert_eq!(code, 503);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

async fn raw(addr: &str, request: &[u8]) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn bodies_and_oversized_headers_are_refused() {
    let (addr, _stop) = start(Guard::open(Duration::from_secs(5)), StateQueries::new()).await;
    let body = "x".repeat(MAX_BODY_BYTES as usize + 1);
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = raw(&addr, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    let huge = "y".repeat(MAX_HEADER_BYTES + 1);
    let request = format!("GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: {huge}\r\n\r\n");
    let answer = raw(&addr, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let (addr, _stop) = start(Guard::open(Duration::from_secs(5)), StateQueries::new()).await;
    let started = Instant::now();
    let answer = raw(&addr, b"GET /healthz HTTP/1.1\r\nHost: a\r\n").await;
    let waited = started.elapsed();
    assert!(
        waited >= HEADER_READ_TIMEOUT && waited < HEADER_READ_TIMEOUT + Duration::from_secs(3),
        "closed after {waited:?}: {answer}"
    );
    assert!(!answer.contains("200 OK"), "{answer}");
}
