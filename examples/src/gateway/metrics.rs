//! `--metrics ADDR`: the registry's counters, breaker states and call durations, served in the
//! Prometheus text format at `http://ADDR/metrics` while the gateway runs.
//!
//! Each scrape runs [`reliability::metrics::export`] and renders the recorder, so every figure is
//! the registry's at the moment of the scrape.

use std::net::SocketAddr;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};

/// Buckets of `reliability_call_duration_seconds`, in seconds: the embedded service answers in
/// tens of milliseconds, a remote one in seconds.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 30.0,
];

/// Installs the Prometheus recorder (once per process) and serves `GET /metrics` on `addr` until
/// the process ends; returns the address bound (the port chosen, for port 0).
pub async fn serve(addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let prometheus = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("reliability_call_duration_seconds".into()),
            BUCKETS,
        )
        .map_err(std::io::Error::other)?
        .install_recorder()
        .map_err(std::io::Error::other)?;
    // The first export starts recording call durations, before the first request.
    reliability::metrics::export();
    let app = Router::new().route(
        "/metrics",
        get(move || async move {
            reliability::metrics::export();
            prometheus.render()
        }),
    );
    tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("the /metrics server stopped: {error}");
        }
    });
    println!("metrics: http://{bound}/metrics (Prometheus text) while the run lasts");
    Ok(bound)
}
