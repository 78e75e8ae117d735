use axum::{body::Body, extract::Request, http::Response};
use std::time::Duration;
use tower_http::trace::{MakeSpan, OnResponse, TraceLayer};
use tracing::{Span, field::Empty};
use tracing_subscriber::{EnvFilter, fmt};

/// Installs the global subscriber. `RUST_LOG` wins over `log_level` when set.
pub fn init(log_level: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // A second call (tests spawning several apps) keeps the first subscriber.
    // Logs go to stderr: stdout carries command output (`server import`'s summary).
    let _ = fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

#[derive(Clone, Copy)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let id = request
            .extensions()
            .get::<crate::layers::RequestId>()
            .map(|r| r.0.as_str())
            .unwrap_or("");
        tracing::info_span!(
            "request",
            id,
            method = %request.method(),
            path = %request.uri().path(),
            status = Empty,
            latency_ms = Empty,
        )
    }
}

#[derive(Clone, Copy)]
pub struct RecordResponse;

impl OnResponse<Body> for RecordResponse {
    fn on_response(self, response: &Response<Body>, latency: Duration, span: &Span) {
        span.record("status", response.status().as_u16());
        span.record("latency_ms", latency.as_secs_f64() * 1000.0);
        tracing::info!("request finished");
    }
}

pub fn layer() -> TraceLayer<
    tower_http::classify::SharedClassifier<tower_http::classify::ServerErrorsAsFailures>,
    RequestSpan,
    tower_http::trace::DefaultOnRequest,
    RecordResponse,
> {
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan)
        .on_response(RecordResponse)
}
