//! Compression of what the server makes per request: pages (the streamed SSR too),
//! server-function JSON and the CSV exports, in whichever of brotli, zstd and gzip the
//! browser accepts.
//!
//! What it leaves alone, and why:
//! - the live stream (`text/event-stream`): an event must leave when it happens, and
//!   an encoder would hold it back until its buffer fills;
//! - `/pkg`: the release build's files are precompressed at brotli's highest level
//!   (`assets.rs`), and a response that already has a `Content-Encoding` is passed on as
//!   it is;
//! - images other than SVG, already compressed, and bodies too small to gain.
//!
//! A streamed body stays streamed: the encoder (async-compression ≥ 0.4.40) flushes
//! what it holds whenever the body it reads from has nothing more for now, so the
//! first rows of an export and the shell of a streamed page leave at once.
//!
//! BREACH needs a secret and attacker-chosen text in one compressed response, and the
//! attacker's page making the victim's browser send it with cookies. The pages that
//! show secrets (the two-factor set-up, recovery codes) reflect no request input, and
//! the session cookie is `SameSite=Lax`, so no other site's page sends it on a fetch.

use tower_http::compression::{
    CompressionLayer,
    predicate::{NotForContentType, Predicate, SizeAbove},
};

/// Below this many bytes the encoding's own overhead eats the gain.
const SMALLEST: u16 = 256;

/// The predicate deciding which responses are compressed.
pub fn worth_compressing() -> impl Predicate {
    SizeAbove::new(SMALLEST)
        .and(NotForContentType::GRPC)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::SSE)
}

/// The layer, with every encoding this build carries (brotli, zstd, gzip) at the
/// crate's default levels, chosen for speed per request (brotli 4).
pub fn layer() -> CompressionLayer<impl Predicate> {
    CompressionLayer::new().compress_when(worth_compressing())
}

#[cfg(test)]
mod tests {
    use super::layer;
    use axum::{Router, body::Body, response::IntoResponse, routing::get};
    use std::io::Read;
    use std::time::Duration;
    use tokio::sync::{mpsc, oneshot};

    /// A row of a pretend export, long enough that its chunks are worth compressing.
    fn row(n: usize) -> String {
        format!("{n},2026-12-07T10:00:00Z,Denver,In store,printer paper,12.50,3,37.50\r\n")
    }

    async fn serve(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }

    fn gunzip(bytes: &[u8]) -> String {
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_string(&mut text)
            .expect("valid gzip");
        text
    }

    /// The first bytes of a streamed body reach the client while the handler still
    /// holds back the rest: the encoder flushes instead of waiting for the end. Were it
    /// to buffer, the client would wait for the first bytes for ever and the test fail.
    #[tokio::test]
    async fn a_streamed_body_leaves_compressed_before_it_ends() {
        let (rest_tx, rest_rx) = oneshot::channel::<()>();
        let rest_rx = std::sync::Arc::new(std::sync::Mutex::new(Some(rest_rx)));
        let app = Router::new()
            .route(
                "/export.csv",
                get(move || {
                    let rest = rest_rx.lock().ok().and_then(|mut r| r.take());
                    async move {
                        let (tx, rx) = mpsc::channel::<Result<String, std::io::Error>>(1);
                        tokio::spawn(async move {
                            let first: String = (0..20).map(row).collect();
                            let _ = tx.send(Ok(first)).await;
                            if let Some(rest) = rest {
                                let _ = rest.await;
                            }
                            let last: String = (20..40).map(row).collect();
                            let _ = tx.send(Ok(last)).await;
                        });
                        let mut rx = rx;
                        let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
                        ([("content-type", "text/csv")], Body::from_stream(stream)).into_response()
                    }
                }),
            )
            .layer(layer());
        let base = serve(app).await;
        let mut response = reqwest::Client::new()
            .get(format!("{base}/export.csv"))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .expect("answer");
        assert_eq!(response.headers()["content-encoding"], "gzip");

        let mut received = Vec::new();
        let mut decoder = flate2::write::MultiGzDecoder::new(Vec::new());
        while !String::from_utf8_lossy(decoder.get_ref()).contains(&row(19)) {
            let chunk = tokio::time::timeout(Duration::from_secs(5), response.chunk())
                .await
                .expect("the first rows arrive before the rest is produced")
                .expect("read")
                .expect("the body has not ended yet");
            received.extend_from_slice(&chunk);
            std::io::Write::write_all(&mut decoder, &chunk).expect("decode");
            std::io::Write::flush(&mut decoder).expect("flush");
        }
        rest_tx.send(()).expect("the handler is waiting");
        while let Some(chunk) = response.chunk().await.expect("read") {
            received.extend_from_slice(&chunk);
        }
        let expected: String = (0..40).map(row).collect();
        assert_eq!(gunzip(&received), expected);
    }

    #[tokio::test]
    async fn events_and_small_bodies_stay_plain() {
        let app = Router::new()
            .route(
                "/events",
                get(|| async {
                    (
                        [("content-type", "text/event-stream")],
                        "data: x\n\n".repeat(100),
                    )
                }),
            )
            .route("/small", get(|| async { "{\"ok\":true}" }))
            .layer(layer());
        let base = serve(app).await;
        let client = reqwest::Client::new();
        for path in ["events", "small"] {
            let response = client
                .get(format!("{base}/{path}"))
                .header("accept-encoding", "br, gzip, zstd")
                .send()
                .await
                .expect("answer");
            assert!(
                response.headers().get("content-encoding").is_none(),
                "{path} is sent as it is"
            );
        }
    }
}
