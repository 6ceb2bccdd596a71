//! The `axum_service` example: an HTTP service whose handler calls an annotated LLM client, whose
//! outbound HTTP client is a tower stack of `reliability`'s layers, and which serves its metrics
//! in the Prometheus text format at `/metrics`.
//!
//! ```text
//!  client ──POST /ask──▶ axum service ──▶ Llm::complete  #[cached] #[fallback]
//!                                                │
//!                                  retry ▸ breaker ▸ rate limit ▸ bulkhead ▸ timeout   (tower)
//!                                                │
//!                                                ▼
//!                                       reqwest ──POST /v1/complete──▶ fake provider (axum)
//! ```
//!
//! [`run`] starts the fake provider and the service on 127.0.0.1 (ephemeral ports), sends the
//! service a handful of questions, scrapes `/metrics` and stops.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use reliability::tower::{
    BulkheadLayer, CircuitBreakerLayer, RateLimitLayer, RetryLayer, TimeoutLayer,
};
use reliability::{
    Backoff, Bulkhead, CircuitBreaker, Jitter, RateLimiter, Retry, RetryPolicy, Timeout, cached,
    fallback,
};
use serde::{Deserialize, Serialize};
use tower::util::BoxCloneSyncService;
use tower::{BoxError, ServiceBuilder, ServiceExt, service_fn};

/// The registry name of every layer of the outbound client.
pub const UPSTREAM: &str = "llm.upstream";
/// The registry name of the answer cache.
pub const CACHE: &str = "llm.answers";

/// The questions [`run`] asks, in order, and what each one exercises.
pub const QUESTIONS: [&str; 7] = [
    "What is Rust?",  // answered
    "what is rust? ", // the same key (trimmed, lower case): a cache hit
    "flaky",          // a 503 with Retry-After, then an answer: one retry
    "slow",           // three attempts time out: three failures for the breaker
    "down",           // two 503s open the breaker (5 failures in a row), the third attempt is
    //                   rejected: the fallback answers
    "What is tower?", // rejected by the open breaker at once: the fallback answers
    "WHAT IS RUST?",  // a cache hit again, whatever the breaker says
];

/// A request to the provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Completion {
    /// The question.
    pub prompt: String,
}

/// A failed call of the provider.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LlmError {
    /// The provider answered with an error status.
    #[error("the provider answered {status}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The delay it asked for (`Retry-After`).
        retry_after: Option<Duration>,
    },
    /// The provider could not be reached, or a layer rejected the call.
    #[error("{0}")]
    Other(String),
}

/// The outbound client: the tower stack of `reliability`'s layers over reqwest.
pub type Client = BoxCloneSyncService<Completion, String, BoxError>;

/// The client stack, in the recommended order: retry, circuit breaker, rate limit, bulkhead,
/// timeout (1 s per attempt), then the HTTP call.
pub fn client(provider: SocketAddr) -> Result<Client, BoxError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder().build()?;
    let url = format!("http://{provider}/v1/complete");
    let transport = service_fn(move |completion: Completion| {
        let request = http.post(&url).json(&completion);
        async move {
            let response = request.send().await?;
            let status = response.status();
            if !status.is_success() {
                let header = |name: &str| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                let retry_after = reliability::http::parse_retry_after(
                    header("retry-after-ms").as_deref(),
                    header("retry-after").as_deref(),
                );
                return Err(BoxError::from(LlmError::Status {
                    status: status.as_u16(),
                    retry_after,
                }));
            }
            Ok::<_, BoxError>(response.text().await?)
        }
    });
    let policy = RetryPolicy::builder()
        .max_attempts(3)
        .backoff(Backoff::Exponential { multiplier: 2.0 })
        .delay(Duration::from_millis(20))
        .max_delay(Duration::from_secs(2))
        .jitter(Jitter::Full)
        .build()?;
    let stack = ServiceBuilder::new()
        .layer(
            RetryLayer::new(Retry::new(UPSTREAM, policy))
                .when(|e: &BoxError| match e.downcast_ref::<LlmError>() {
                    Some(LlmError::Status { status, .. }) => {
                        reliability::http::is_transient_status(*status)
                    }
                    // Timeouts, connection errors.
                    _ => true,
                })
                .retry_after(|e: &BoxError| match e.downcast_ref::<LlmError>() {
                    Some(LlmError::Status { retry_after, .. }) => *retry_after,
                    _ => None,
                }),
        )
        .layer(CircuitBreakerLayer::new(
            CircuitBreaker::builder(UPSTREAM)
                .failure_threshold(5)
                .cooldown(Duration::from_secs(30))
                .build()?,
        ))
        .layer(RateLimitLayer::new(
            RateLimiter::builder(UPSTREAM, 50)
                .wait(Duration::from_millis(100))
                .build()?,
        ))
        .layer(BulkheadLayer::new(
            Bulkhead::builder(UPSTREAM, 8).queue(16).build()?,
        ))
        .layer(TimeoutLayer::new(Timeout::new(
            UPSTREAM,
            Duration::from_secs(1),
        )?))
        .service(transport);
    Ok(BoxCloneSyncService::new(stack))
}

/// The LLM client the handler calls: the cache and the fallback are attributes, the calls to the
/// provider go through the [`client`] stack.
#[derive(Clone)]
pub struct Llm {
    client: Client,
}

impl Llm {
    /// Answers `query`: from the cache, else from the provider, else a canned answer.
    #[cached(ttl = 600, key = query.trim().to_lowercase(), name = "llm.answers")]
    #[fallback(Self::canned)]
    pub async fn complete(&self, query: String) -> Result<String, LlmError> {
        let completion = Completion {
            prompt: query.trim().to_owned(),
        };
        self.client
            .clone()
            .oneshot(completion)
            .await
            .map_err(|e| match e.downcast::<LlmError>() {
                Ok(e) => *e,
                Err(e) => LlmError::Other(e.to_string()),
            })
    }

    async fn canned(&self, query: String) -> String {
        format!(
            "The assistant is busy; please ask \"{}\" again later.",
            query.trim()
        )
    }
}

/// The fake provider: answers, except for the prompts `flaky` (a 503 with `Retry-After: 0` on
/// every other call), `slow` (answers after a minute) and `down` (always 503).
pub async fn provider() -> Result<SocketAddr, BoxError> {
    let flaky = Arc::new(AtomicU32::new(0));
    let app = Router::new().route(
        "/v1/complete",
        post(move |Json(completion): Json<Completion>| {
            let flaky = flaky.clone();
            async move {
                let mut headers = HeaderMap::new();
                match completion.prompt.as_str() {
                    "flaky" if flaky.fetch_add(1, Ordering::SeqCst).is_multiple_of(2) => {
                        headers.insert("retry-after", "0".parse().expect("a header value"));
                        return (StatusCode::SERVICE_UNAVAILABLE, headers, String::new());
                    }
                    "slow" => tokio::time::sleep(Duration::from_secs(60)).await,
                    "down" => return (StatusCode::SERVICE_UNAVAILABLE, headers, String::new()),
                    _ => {}
                }
                let answer = format!("An answer to \"{}\".", completion.prompt);
                (StatusCode::OK, headers, answer)
            }
        }),
    );
    serve(app).await
}

/// A question to the service.
#[derive(Debug, Serialize, Deserialize)]
pub struct Ask {
    /// The question.
    pub q: String,
}

/// The service: `POST /ask` (`{"q": "..."}`) and `GET /metrics`.
pub fn service(llm: Llm, prometheus: PrometheusHandle) -> Router {
    Router::new()
        .route(
            "/ask",
            post(|State(llm): State<Llm>, Json(ask): Json<Ask>| async move {
                match llm.complete(ask.q.clone()).await {
                    Ok(answer) => {
                        tracing::info!(question = %ask.q, %answer, "answered");
                        (StatusCode::OK, answer)
                    }
                    Err(error) => {
                        tracing::warn!(question = %ask.q, %error, "no answer");
                        (StatusCode::BAD_GATEWAY, error.to_string())
                    }
                }
            }),
        )
        .route(
            "/metrics",
            get(move || async move {
                reliability::metrics::export();
                prometheus.render()
            }),
        )
        .with_state(llm)
}

/// Serves `app` on an ephemeral port of 127.0.0.1, in a task.
async fn serve(app: Router) -> Result<SocketAddr, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "server stopped");
        }
    });
    Ok(addr)
}

/// Installs the Prometheus recorder (once per process), with buckets for the call durations.
pub fn install_prometheus() -> Result<PrometheusHandle, BoxError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("reliability_call_duration_seconds".into()),
            &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
        )?
        .install_recorder()?;
    // The first export starts recording call durations.
    reliability::metrics::export();
    Ok(handle)
}

/// What [`run`] saw.
#[derive(Debug)]
pub struct Report {
    /// Each question of [`QUESTIONS`] with the status and body the service answered.
    pub answers: Vec<(String, u16, String)>,
    /// The text `/metrics` served after the last question.
    pub metrics: String,
}

/// Starts the provider and the service, asks [`QUESTIONS`], scrapes `/metrics`.
pub async fn run() -> Result<Report, BoxError> {
    let prometheus = install_prometheus()?;
    let provider = provider().await?;
    let llm = Llm {
        client: client(provider)?,
    };
    let addr = serve(service(llm, prometheus)).await?;
    tracing::info!(%addr, %provider, "serving");

    let http = reqwest::Client::new();
    let mut answers = Vec::new();
    for question in QUESTIONS {
        let response = http
            .post(format!("http://{addr}/ask"))
            .json(&Ask {
                q: question.to_owned(),
            })
            .send()
            .await?;
        let status = response.status().as_u16();
        answers.push((question.to_owned(), status, response.text().await?));
    }
    let metrics = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    Ok(Report { answers, metrics })
}
