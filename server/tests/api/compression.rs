//! Every kind of dynamic response goes out compressed in whichever of brotli, zstd and
//! gzip the browser offers, and decompresses to what an uncompressed request gets; the
//! live stream stays plain and its events still arrive at once.

use crate::helpers::{TestApp, spawn_app};
use crate::live::Sse;
use app::model::Role;
use app::model::live::FeedStatus;
use std::io::Read;
use std::time::Duration;

const ENCODINGS: [&str; 3] = ["br", "zstd", "gzip"];

fn decode(encoding: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        "br" => brotli::Decompressor::new(body, 4096)
            .read_to_end(&mut out)
            .map(|_| ()),
        "zstd" => zstd::stream::read::Decoder::new(body)
            .and_then(|mut d| d.read_to_end(&mut out))
            .map(|_| ()),
        "gzip" => flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .map(|_| ()),
        other => panic!("no decoder for {other}"),
    }
    .unwrap_or_else(|e| panic!("a valid {encoding} body: {e}"));
    out
}

/// A response as it came over the wire: its encoding and its raw bytes.
struct Wire {
    encoding: Option<String>,
    bytes: Vec<u8>,
}

impl Wire {
    async fn read(request: reqwest::RequestBuilder, accept: &str) -> Wire {
        let response = request
            .header("accept-encoding", accept)
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), 200, "{accept}");
        let encoding = response
            .headers()
            .get("content-encoding")
            .map(|v| v.to_str().expect("ascii").to_string());
        Wire {
            encoding,
            bytes: response.bytes().await.expect("body").to_vec(),
        }
    }

    /// The body after undoing `expected`, which must be the encoding used.
    fn decoded(&self, expected: &str) -> String {
        assert_eq!(self.encoding.as_deref(), Some(expected));
        String::from_utf8(decode(expected, &self.bytes)).expect("utf-8")
    }
}

/// Sends `request()` once plainly and once per encoding; returns the plain body and
/// checks each encoded one decodes to a body `same` accepts as equal to it.
async fn compressed_each_way(
    what: &str,
    request: impl Fn() -> reqwest::RequestBuilder,
    same: impl Fn(&str, &str) -> bool,
) -> String {
    let plain = Wire::read(request(), "identity").await;
    assert_eq!(plain.encoding, None, "{what}: identity is sent as it is");
    let plain = String::from_utf8(plain.bytes).expect("utf-8");
    for encoding in ENCODINGS {
        let wire = Wire::read(request(), &format!("{encoding}, identity;q=0.5")).await;
        let body = wire.decoded(encoding);
        assert!(
            same(&plain, &body),
            "{what} in {encoding} decodes to the same: {} against {}",
            &body[body.len().saturating_sub(300)..],
            &plain[plain.len().saturating_sub(300)..]
        );
        assert!(
            wire.bytes.len() * 2 < plain.len(),
            "{what} in {encoding}: {} bytes on the wire for {} raw",
            wire.bytes.len(),
            plain.len()
        );
    }
    plain
}

async fn seeded_worker(app: &TestApp) -> reqwest::Client {
    crate::sync::seed(app, 400, 91).await;
    app.user_with_role("squeezed", Role::TechnicalWorker).await
}

#[tokio::test]
async fn pages_server_functions_and_exports_go_out_compressed() {
    let app = spawn_app().await;
    let worker = seeded_worker(&app).await;
    let newest: String =
        sqlx::query_scalar("SELECT id FROM sales ORDER BY sale_date DESC, id DESC LIMIT 1")
            .fetch_one(&app.mysql)
            .await
            .unwrap();

    // The server-rendered page, streamed: its nonces differ per response, so compare
    // what it shows, and that it decodes to the stream's last piece.
    let whole =
        |page: &str| page.contains(&newest) && page.ends_with("__INCOMPLETE_CHUNKS=[];</script>");
    let page = compressed_each_way(
        "the worker's page",
        || worker.get(app.url("/worker")),
        |plain, body| whole(plain) && whole(body),
    )
    .await;
    assert!(page.contains("<table"), "the page holds the sales table");

    let list = serde_json::json!({ "query": {} });
    compressed_each_way(
        "a server function's JSON",
        || worker.post(app.url("/api/sales/list")).json(&list),
        |plain, body| {
            serde_json::from_str::<serde_json::Value>(plain).ok()
                == serde_json::from_str::<serde_json::Value>(body).ok()
        },
    )
    .await;

    let csv = compressed_each_way(
        "the sales export",
        || worker.get(app.url("/api/export/sales.csv")),
        |plain, body| plain == body,
    )
    .await;
    assert_eq!(csv.lines().count(), 401, "a header and every sale");
}

#[tokio::test]
async fn the_live_stream_stays_plain_and_an_edit_reaches_it_within_its_poll_interval() {
    let app = spawn_app().await;
    let worker = seeded_worker(&app).await;
    let mut stream =
        Sse::open_accepting(&worker, &app.url("/api/events"), None, "br, gzip, zstd").await;
    stream
        .wait_for_status(FeedStatus::Live, Duration::from_secs(5))
        .await;
    let id: String = sqlx::query_scalar("SELECT id FROM sales LIMIT 1")
        .fetch_one(&app.mysql)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    app::server::sales::dual_write::writer(app.mysql.clone(), app.mongo.clone())
        .delete(None, &app::model::SaleId::parse(&id).unwrap(), 1)
        .await
        .expect("delete");
    let acknowledged = started.elapsed();
    let change = stream.next_change(Duration::from_secs(5)).await;
    let waited = started.elapsed() - acknowledged;
    assert_eq!(change.sale_id.map(|s| s.to_string()), Some(id));
    // One poll interval (150 ms) and the time to send it; an encoder holding the
    // event back would keep it until the stream ends.
    assert!(
        waited < Duration::from_millis(150 + 850),
        "the event came {waited:?} after the delete was acknowledged"
    );
}
