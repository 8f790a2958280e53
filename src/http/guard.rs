//! What every request passes before its handler: a size check, the bearer token on
//! `/sagas/{id}` when one is configured, and a time limit.
//!
//! `/metrics`, `/healthz` and `/readyz` stay open: probes and Prometheus scrape them without
//! credentials, and they reveal no saga. The token is compared in constant time and never logged.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::security::Secret;

/// The routes need no body; anything bigger than this is refused unread.
pub const MAX_BODY_BYTES: u64 = 1024;

#[derive(Debug, Clone)]
pub struct Guard {
    /// Required on `/sagas/{id}` when set.
    pub token: Option<Secret>,
    /// Longest a request may take before it is answered 503.
    pub request_timeout: Duration,
}

impl Guard {
    pub fn open(request_timeout: Duration) -> Self {
        Self {
            token: None,
            request_timeout,
        }
    }

    fn authorized(&self, request: &Request) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        presented.len() == token.expose().len()
            && openssl::memcmp::eq(presented.as_bytes(), token.expose().as_bytes())
    }
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// The middleware: 413 for a body, 401 without the token, 503 past the time limit.
pub async fn check(State(guard): State<Arc<Guard>>, request: Request, next: Next) -> Response {
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = request.headers().contains_key(header::TRANSFER_ENCODING);
    if chunked || declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "request bodies are limited to {MAX_BODY_BYTES} bytes; these routes take none"
            ),
        );
    }
    if request.uri().path().starts_with("/sagas/") && !guard.authorized(&request) {
        let mut response = error(
            StatusCode::UNAUTHORIZED,
            "/sagas/{id} needs the bearer token set in [http] token (Authorization: Bearer ...)",
        );
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            "Bearer".parse().expect("a valid header"),
        );
        return response;
    }
    match tokio::time::timeout(guard.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            &format!(
                "no answer within {} ms (a partition task is busy or stuck); retry shortly",
                guard.request_timeout.as_millis()
            ),
        ),
    }
}
