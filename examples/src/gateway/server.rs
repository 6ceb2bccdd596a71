//! The embedded OpenAI-compatible chat-completions service, with seeded fault injection.
//!
//! `POST /v1/chat/completions` takes `{"model": .., "messages": [{"role": .., "content": ..}]}` and
//! answers like OpenAI's API: a `chat.completion` object, or `{"error": {..}}` with HTTP 400, 401,
//! 429 (with `Retry-After`), 500 or 503. Clients may send an `x-request-id` header; the service
//! counts the attempts of each id, and the [`FaultPlan`] decides each attempt's fault from it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde_json::json;
use tokio::task::JoinHandle;

use super::faults::{Fault, FaultPlan};

/// What the embedded service serves and how it misbehaves.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// The faults to inject.
    pub plan: FaultPlan,
    /// The model that the outage window takes down.
    pub primary_model: String,
    /// If set, requests must carry `Authorization: Bearer <key>` or get HTTP 401.
    pub api_key: Option<String>,
}

/// A running embedded service on `127.0.0.1`; stopped when dropped.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
struct Shared {
    config: ServiceConfig,
    epoch: Mutex<Instant>,
    attempts: Mutex<HashMap<(String, String), u32>>,
    anonymous: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Server {
    /// Binds a free port on `127.0.0.1` and starts serving on the current tokio runtime.
    pub async fn start(config: ServiceConfig) -> std::io::Result<Server> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            epoch: Mutex::new(Instant::now()),
            attempts: Mutex::new(HashMap::new()),
            anonymous: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            // Serving ends only with an I/O error on the listener; nothing to do then.
            let _ = axum::serve(listener, app).await;
        });
        Ok(Server { addr, shared, task })
    }

    /// The base URL of the API, `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Starts a new timeline (the outage window is measured from now) and forgets every attempt
    /// count, so a rung sees the same faults as the rung before it.
    pub fn restart(&self) {
        *lock(&self.shared.epoch) = Instant::now();
        lock(&self.shared.attempts).clear();
    }

    /// The plan the service follows.
    pub fn plan(&self) -> &FaultPlan {
        &self.shared.config.plan
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Deserialize)]
struct ChatRequest {
    model: String,
    messages: Vec<Message>,
}

#[derive(Deserialize)]
struct Message {
    role: String,
    content: String,
}

fn error(status: StatusCode, kind: &str, message: &str) -> Response {
    let body = json!({ "error": { "message": message, "type": kind, "code": null } });
    (status, axum::Json(body)).into_response()
}

async fn chat(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(key) = &shared.config.api_key {
        let expected = format!("Bearer {key}");
        let given = headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes);
        if given != Some(expected.as_bytes()) {
            return error(
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                "Incorrect API key provided.",
            );
        }
    }
    let request: ChatRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            let message = format!("We could not parse the JSON body of your request: {e}");
            return error(StatusCode::BAD_REQUEST, "invalid_request_error", &message);
        }
    };
    let Some(question) = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user" && !m.content.trim().is_empty())
    else {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "`messages` must contain a non-empty user message.",
        );
    };

    let id = match headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
        Some(id) => id.to_owned(),
        None => format!(
            "anonymous-{}",
            shared.anonymous.fetch_add(1, Ordering::Relaxed)
        ),
    };
    let attempt = {
        let mut attempts = lock(&shared.attempts);
        let seen = attempts
            .entry((request.model.clone(), id.clone()))
            .or_insert(0);
        *seen += 1;
        *seen - 1
    };
    let elapsed = lock(&shared.epoch).elapsed();
    let primary = request.model == shared.config.primary_model;
    let fault = shared
        .config
        .plan
        .decide(&request.model, primary, &id, attempt, elapsed);

    match fault {
        Fault::Outage => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "The model is currently unavailable.",
        ),
        Fault::Hang => std::future::pending().await,
        Fault::ServerError { after } => {
            tokio::time::sleep(after).await;
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "The server had an error while processing your request.",
            )
        }
        Fault::RateLimited { after } => {
            tokio::time::sleep(after).await;
            let mut response = error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                "Rate limit reached. Please try again in 1s.",
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
        Fault::Answer { after } => {
            tokio::time::sleep(after).await;
            completion(&request.model, &id, attempt, &question.content)
        }
    }
}

fn completion(model: &str, id: &str, attempt: u32, question: &str) -> Response {
    let content = format!(
        "[{model}] Here is what I know about \"{}\".",
        question.trim()
    );
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let prompt_tokens = question.split_whitespace().count();
    let completion_tokens = content.split_whitespace().count();
    axum::Json(json!({
        "id": format!("chatcmpl-{id}-{attempt}"),
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": content },
            "finish_reason": "stop"
        }],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens
        }
    }))
    .into_response()
}
