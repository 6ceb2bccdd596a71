//! The HTTP client of an OpenAI-compatible chat-completions API, and the error type of a call.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use reliability::http;
use reqwest::header::RETRY_AFTER;
use serde::Deserialize;
use serde_json::json;

/// Why a call to the model failed.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// HTTP 429 (too many requests). Transient.
    #[error("rate limited (HTTP 429){}", match retry_after {
        Some(d) => format!(", retry after {d:?}"),
        None => String::new(),
    })]
    RateLimited {
        /// The wait the service asked for (`retry-after-ms`, else `Retry-After`), if it said.
        retry_after: Option<Duration>,
    },
    /// Another status a retry may fix: 5xx, 408 or 409 ([`reliability::http::is_transient`]).
    #[error("server error (HTTP {status})")]
    Server {
        /// The status code.
        status: u16,
    },
    /// Any other HTTP 4xx: the request itself is wrong (400), not allowed (401, 403, 404), or the
    /// account is out of credits (429 `insufficient_quota`). Not transient: never retried, never
    /// counted by the circuit breaker.
    #[error("request refused (HTTP {status}): {message}")]
    Refused {
        /// The status code.
        status: u16,
        /// The server's explanation.
        message: String,
    },
    /// No answer: connection refused or reset, or the HTTP client's own deadline passed. Transient.
    #[error("{}", chain(.0))]
    Transport(#[source] reqwest::Error),
    /// An answer that is not a chat completion. Not transient.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// A timeout or an open circuit from the reliability layers. Timeouts are transient.
    #[error(transparent)]
    Reliability(#[from] reliability::Error),
}

impl LlmError {
    /// Whether trying again may help: the statuses [`reliability::http::is_transient`] names (429,
    /// 5xx, 408, 409), transport failures, timeouts, and a client-side rate limiter's rejection. Used
    /// as the `when` of the retries and of the circuit breaker.
    pub fn is_transient(&self) -> bool {
        match self {
            LlmError::RateLimited { .. } | LlmError::Server { .. } | LlmError::Transport(_) => true,
            LlmError::Reliability(e) => e.is_timeout() || e.is_rate_limited(),
            LlmError::Refused { .. } | LlmError::Malformed(_) => false,
        }
    }

    /// The wait the service asked for with a 429, for `#[retry(retry_after = ...)]`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::RateLimited { retry_after } => *retry_after,
            _ => None,
        }
    }
}

/// `error: cause: cause`, on one line.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Where the models are and how to reach them.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// Base URL of the API (`http://host/v1`) or the full chat-completions URL.
    pub url: String,
    /// The primary model.
    pub primary_model: String,
    /// The fallback model.
    pub fallback_model: String,
    /// Sent as `Authorization: Bearer <key>` if set.
    pub api_key: Option<String>,
    /// The HTTP client's own deadline for a whole request: what ends a hung request when no
    /// `#[timeout]` does.
    pub client_deadline: Duration,
}

/// The client: one connection pool shared by every call.
#[derive(Debug)]
pub struct Backend {
    http: reqwest::Client,
    url: String,
    endpoint: Endpoint,
}

/// The chat-completions URL of a base URL: `…/chat/completions` as is, `…/v1` plus
/// `/chat/completions`, anything else plus `/v1/chat/completions`.
pub fn chat_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.ends_with("/chat/completions") {
        base.to_owned()
    } else if base.ends_with("/v1") {
        format!("{base}/chat/completions")
    } else {
        format!("{base}/v1/chat/completions")
    }
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: AssistantMessage,
}

#[derive(Deserialize)]
struct AssistantMessage {
    content: Option<String>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: String,
}

impl Backend {
    /// A client for `endpoint`, TLS by rustls with ring.
    pub fn new(endpoint: Endpoint) -> Result<Backend, LlmError> {
        // reqwest is built without a default TLS provider; ring is ours. `Err` means one is set.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(endpoint.client_deadline)
            .connect_timeout(endpoint.client_deadline.min(Duration::from_secs(5)))
            .pool_max_idle_per_host(256)
            .build()
            .map_err(LlmError::Transport)?;
        Ok(Backend {
            http,
            url: chat_url(&endpoint.url),
            endpoint,
        })
    }

    /// The chat-completions URL requests go to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The endpoint's settings.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Asks `model` one question; `request_id` goes in the `x-request-id` header.
    pub async fn complete(
        &self,
        model: &str,
        question: &str,
        request_id: &str,
    ) -> Result<String, LlmError> {
        let body = json!({
            "model": model,
            "messages": [{ "role": "user", "content": question }],
        });
        let mut request = self
            .http
            .post(&self.url)
            .header("x-request-id", request_id)
            .json(&body);
        if let Some(key) = &self.endpoint.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(LlmError::Transport)?;
        let status = response.status();
        if status.is_success() {
            let completion: Completion = response.json().await.map_err(|e| {
                if e.is_decode() {
                    LlmError::Malformed(chain(&e))
                } else {
                    LlmError::Transport(e)
                }
            })?;
            return completion
                .choices
                .into_iter()
                .next()
                .and_then(|c| c.message.content)
                .ok_or_else(|| LlmError::Malformed("no choices[0].message.content".into()));
        }
        let status = status.as_u16();
        let headers = response.headers();
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let retry_after =
            http::parse_retry_after(header("retry-after-ms"), header(RETRY_AFTER.as_str()));
        let text = response.text().await.unwrap_or_default();
        // The body tells a busy 429 from an account out of credits (`insufficient_quota`).
        match (status, http::is_transient(status, Some(&text))) {
            (429, true) => Err(LlmError::RateLimited { retry_after }),
            (_, true) => Err(LlmError::Server { status }),
            (_, false) => {
                let message = serde_json::from_str::<ErrorBody>(&text)
                    .map(|b| b.error.message)
                    .unwrap_or(text);
                Err(LlmError::Refused { status, message })
            }
        }
    }
}

/// Which model a call asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// The primary model (`gpt-4` on the embedded service).
    Primary,
    /// The fallback model (`gpt-3.5-turbo` on the embedded service).
    Fallback,
}

/// Who produced an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The primary model.
    Primary,
    /// The fallback model.
    Fallback,
    /// The canned answer.
    Canned,
}

/// An answer and who produced it (a cached answer keeps its producer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The text.
    pub text: String,
    /// Its producer.
    pub source: Source,
    /// The id of the request whose call produced it: another request's id marks an answer that
    /// came from the cache.
    pub request: Arc<str>,
}

/// What one user request did, counted by the functions it ran (the example's own tally).
#[derive(Debug, Default)]
pub struct Trace {
    primary: AtomicU32,
    fallback: AtomicU32,
    canned: AtomicU32,
    rate_limited: AtomicU32,
}

impl Trace {
    /// HTTP requests this user request sent to the primary model.
    pub fn primary_attempts(&self) -> u32 {
        self.primary.load(Ordering::Relaxed)
    }

    /// HTTP requests this user request sent to the fallback model.
    pub fn fallback_attempts(&self) -> u32 {
        self.fallback.load(Ordering::Relaxed)
    }

    /// HTTP 429s this user request received.
    pub fn rate_limited(&self) -> u32 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// Canned answers this user request made.
    pub fn canned_calls(&self) -> u32 {
        self.canned.load(Ordering::Relaxed)
    }

    /// Whether any function of the stack ran for this request (none did: served by the cache).
    pub fn ran_anything(&self) -> bool {
        self.primary_attempts() + self.fallback_attempts() + self.canned.load(Ordering::Relaxed) > 0
    }
}

/// The context of one user request, passed to every function of the stack: the shared client,
/// the request's id (sent as `x-request-id`) and its [`Trace`]. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Call {
    backend: Arc<Backend>,
    id: String,
    trace: Arc<Trace>,
}

impl Call {
    /// The request's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The context of request `id`.
    pub fn new(backend: Arc<Backend>, id: String) -> Call {
        Call {
            backend,
            id,
            trace: Arc::default(),
        }
    }

    /// What the request did so far.
    pub fn trace(&self) -> &Trace {
        &self.trace
    }

    /// One HTTP request to `model`.
    pub async fn complete(&self, model: Model, question: &str) -> Result<Answer, LlmError> {
        let endpoint = self.backend.endpoint();
        let (name, counter, source) = match model {
            Model::Primary => (
                &endpoint.primary_model,
                &self.trace.primary,
                Source::Primary,
            ),
            Model::Fallback => (
                &endpoint.fallback_model,
                &self.trace.fallback,
                Source::Fallback,
            ),
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let text = self
            .backend
            .complete(name, question, &self.id)
            .await
            .inspect_err(|e| {
                if matches!(e, LlmError::RateLimited { .. }) {
                    self.trace.rate_limited.fetch_add(1, Ordering::Relaxed);
                }
            })?;
        Ok(Answer {
            text,
            source,
            request: self.id.as_str().into(),
        })
    }

    /// The last answer, which needs no service: a template picked by keyword, as in the seeds.
    pub fn canned(&self, question: &str) -> Answer {
        self.trace.canned.fetch_add(1, Ordering::Relaxed);
        let q = question.to_lowercase();
        let text = if q.contains("help") {
            "I'm here to help! Please describe your issue."
        } else if q.contains("hours") || q.contains("open") {
            "We're open Monday to Friday, 9am to 5pm."
        } else {
            "Sorry, I'm temporarily unavailable. Please try again in a few minutes."
        };
        Answer {
            text: text.to_owned(),
            source: Source::Canned,
            request: self.id.as_str().into(),
        }
    }
}
