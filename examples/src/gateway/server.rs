//! The embedded OpenAI-compatible chat-completions service, with seeded fault injection.
//!
//! `POST /v1/chat/completions` takes `{"model": .., "messages": [{"role": .., "content": ..}]}` and
//! answers like OpenAI's API: a `chat.completion` object, or `{"error": {..}}` with HTTP 400, 401,
//! 429 (with `Retry-After` and `retry-after-ms`), 500 or 503. Clients may send an `x-request-id`
//! header; the service counts the attempts of each id, and the [`FaultPlan`] decides each attempt's
//! fault from it. With a [`Quota`], each API key (the bearer token) may send so many requests a
//! second; the service answers 429 beyond it, before the model sees the request.

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
    /// If set, the requests a second each API key may send.
    pub quota: Option<Quota>,
}

/// A requests-per-second quota per API key, enforced as a token bucket: `per_second` tokens a
/// second, at most `burst` saved up. Every request that reaches the model takes a token (a request
/// the model then fails or never answers too: the quota counts requests, not answers); a request
/// that finds none gets HTTP 429 and takes none.
///
/// The 429 says when to come back (`retry-after-ms`, and `Retry-After` in whole seconds, rounded
/// up): at the next token not already promised to an earlier 429 of the same key. So clients that
/// honour it come back one by one, as the tokens do, and not all at once.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quota {
    /// Requests a second, on average.
    pub per_second: u32,
    /// Requests that may be sent at once after a quiet period.
    pub burst: u32,
}

/// One API key's token bucket.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    /// The next token no 429 has promised yet.
    promised: Instant,
}

impl Bucket {
    fn new(quota: Quota, now: Instant) -> Bucket {
        Bucket {
            tokens: f64::from(quota.burst),
            updated: now,
            promised: now,
        }
    }

    /// Takes a token, or says when to come back.
    fn take(&mut self, quota: Quota, now: Instant) -> Result<(), Duration> {
        let rate = f64::from(quota.per_second.max(1));
        let earned = now.saturating_duration_since(self.updated).as_secs_f64() * rate;
        self.tokens = (self.tokens + earned).min(f64::from(quota.burst.max(1)));
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let ready = now + Duration::from_secs_f64((1.0 - self.tokens) / rate);
        let slot = ready.max(self.promised);
        self.promised = slot + Duration::from_secs_f64(1.0 / rate);
        Err(slot - now)
    }
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
    buckets: Mutex<HashMap<String, Bucket>>,
    over_quota: AtomicU64,
    too_many: AtomicU64,
    /// HTTP 503s of the outage window.
    outage_failures: AtomicU64,
    /// Answers given, by question (trimmed, lowercased).
    answered: Mutex<HashMap<String, u64>>,
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
            buckets: Mutex::new(HashMap::new()),
            over_quota: AtomicU64::new(0),
            too_many: AtomicU64::new(0),
            outage_failures: AtomicU64::new(0),
            answered: Mutex::new(HashMap::new()),
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

    /// Starts a new timeline (the outage window is measured from now), forgets every attempt
    /// count and refills every quota, so a rung sees the same faults as the rung before it.
    pub fn restart(&self) {
        *lock(&self.shared.epoch) = Instant::now();
        lock(&self.shared.attempts).clear();
        lock(&self.shared.buckets).clear();
        self.shared.over_quota.store(0, Ordering::Relaxed);
        self.shared.too_many.store(0, Ordering::Relaxed);
        self.shared.outage_failures.store(0, Ordering::Relaxed);
        lock(&self.shared.answered).clear();
    }

    /// The plan the service follows.
    pub fn plan(&self) -> &FaultPlan {
        &self.shared.config.plan
    }

    /// The quota it enforces, if any.
    pub fn quota(&self) -> Option<Quota> {
        self.shared.config.quota
    }

    /// Requests it refused with 429 for being over the quota, since the last
    /// [`restart`](Self::restart).
    pub fn over_quota(&self) -> u64 {
        self.shared.over_quota.load(Ordering::Relaxed)
    }

    /// Every 429 it sent (over the quota, or injected by the [`FaultPlan`]), since the last
    /// [`restart`](Self::restart).
    pub fn rate_limited(&self) -> u64 {
        self.shared.too_many.load(Ordering::Relaxed)
    }

    /// Requests to the primary model it answered with HTTP 503 because the outage window was on,
    /// since the last [`restart`](Self::restart).
    pub fn outage_failures(&self) -> u64 {
        self.shared.outage_failures.load(Ordering::Relaxed)
    }

    /// Answers it gave (any model), since the last [`restart`](Self::restart).
    pub fn answers(&self) -> u64 {
        lock(&self.shared.answered).values().sum()
    }

    /// Distinct questions (trimmed, lowercased) it answered, since the last
    /// [`restart`](Self::restart).
    pub fn distinct_answered(&self) -> u64 {
        lock(&self.shared.answered).len() as u64
    }

    /// Answers to a question (trimmed, lowercased) it had answered before: the model calls a cache
    /// shared by every client could have saved, since the last [`restart`](Self::restart).
    pub fn repeated_answers(&self) -> u64 {
        let answered = lock(&self.shared.answered);
        answered.values().map(|n| n - 1).sum()
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

/// A 429 asking the client to wait `wait`: `retry-after-ms` (as OpenAI sends it) and `Retry-After`
/// in whole seconds, rounded up.
fn too_many_requests(shared: &Shared, message: &str, wait: Duration) -> Response {
    shared.too_many.fetch_add(1, Ordering::Relaxed);
    let body = json!({ "error": {
        "message": message, "type": "requests", "code": "rate_limit_exceeded"
    } });
    let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    let millis = wait.as_secs_f64() * 1e3;
    if let Ok(value) = HeaderValue::from_str(&format!("{millis:.0}")) {
        headers.insert("retry-after-ms", value);
    }
    headers.insert(
        header::RETRY_AFTER,
        HeaderValue::from(wait.as_secs_f64().ceil() as u64),
    );
    response
}

/// The API key a request is counted against: its bearer token, or `anonymous`.
fn api_key(headers: &HeaderMap) -> String {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("anonymous")
        .to_owned()
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
    if let Some(quota) = shared.config.quota {
        let now = Instant::now();
        let taken = lock(&shared.buckets)
            .entry(api_key(&headers))
            .or_insert_with(|| Bucket::new(quota, now))
            .take(quota, now);
        if let Err(wait) = taken {
            shared.over_quota.fetch_add(1, Ordering::Relaxed);
            let message = format!(
                "Rate limit reached for requests: limit {} per second. Please try again in {} ms.",
                quota.per_second,
                wait.as_millis()
            );
            return too_many_requests(&shared, &message, wait);
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
        Fault::Outage => {
            shared.outage_failures.fetch_add(1, Ordering::Relaxed);
            error(
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                "The model is currently unavailable.",
            )
        }
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
            // The embedded service's timeline is the real one divided by 100: "1 s" is 10 ms.
            too_many_requests(
                &shared,
                "Rate limit reached. Please try again in 10 ms.",
                FAULT_RETRY_AFTER,
            )
        }
        Fault::Answer { after } => {
            tokio::time::sleep(after).await;
            *lock(&shared.answered)
                .entry(question.content.trim().to_lowercase())
                .or_insert(0) += 1;
            completion(&request.model, &id, attempt, &question.content)
        }
    }
}

/// The wait a 429 of the [`FaultPlan`] asks for (1 s on the timeline divided by 100).
pub const FAULT_RETRY_AFTER: Duration = Duration::from_millis(10);

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
