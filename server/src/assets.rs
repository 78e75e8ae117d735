//! The browser bundle under `/pkg`: served precompressed (brotli, else gzip) when the
//! build wrote `.br`/`.gz` files beside the originals (`cargo leptos build --release
//! --precompress`), and cached for a year when the name carries a content hash
//! (`hash-files`), so a second visit downloads nothing. Unhashed names (development
//! builds) are revalidated on every use instead, so a rebuild is never hidden by a cache.

use axum::{
    Router,
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::Response,
};
use tower_http::services::ServeDir;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// The `/pkg` service for a site whose bundle lives in `dir`.
pub fn bundle<S: Clone + Send + Sync + 'static>(dir: &str) -> Router<S> {
    let files = ServeDir::new(dir).precompressed_br().precompressed_gzip();
    Router::new()
        .fallback_service(files)
        .layer(middleware::from_fn(cache_policy))
}

async fn cache_policy(request: Request, next: Next) -> Response {
    let hashed = is_hashed(request.uri().path());
    let mut response = next.run(request).await;
    if response.status().is_success() || response.status() == StatusCode::NOT_MODIFIED {
        let policy = if hashed { IMMUTABLE } else { REVALIDATE };
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static(policy));
    }
    response
}

/// cargo-leptos names hashed files `<stem>.<hash>.<ext>`, the hash being 22 characters
/// of unpadded base64url (an MD5 of the content).
fn is_hashed(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    let parts: Vec<&str> = name.split('.').collect();
    // Neither the stem nor the extension: a middle part.
    parts.len() >= 3
        && parts[1..parts.len() - 1].iter().any(|part| {
            part.len() == 22
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::{bundle, is_hashed};

    const HASHED: &str = "portal.Yw3cJ1N5yKj0dO8H2a_x-Q.wasm";

    /// A bundle directory as `cargo leptos build --release --precompress` leaves it.
    fn site() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("portal-assets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join(HASHED), b"\0asm plain").expect("write");
        std::fs::write(dir.join(format!("{HASHED}.br")), b"brotli bytes").expect("write");
        std::fs::write(dir.join(format!("{HASHED}.gz")), b"gzip bytes").expect("write");
        std::fs::write(dir.join("portal.js"), b"export {}").expect("write");
        dir
    }

    #[tokio::test]
    async fn the_bundle_is_served_precompressed_and_hashed_names_are_cached_for_good() {
        let dir = site();
        let app = axum::Router::new().nest("/pkg", bundle(dir.to_str().expect("utf-8 path")));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}/pkg", listener.local_addr().expect("address"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        let client = reqwest::Client::new();
        let get = |path: &str, encoding: &'static str| {
            client
                .get(format!("{base}/{path}"))
                .header("accept-encoding", encoding)
                .send()
        };

        let br = get(HASHED, "gzip, deflate, br").await.expect("answer");
        assert_eq!(br.headers()["content-encoding"], "br");
        assert_eq!(
            br.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert_eq!(br.bytes().await.expect("body").as_ref(), b"brotli bytes");

        let gz = get(HASHED, "gzip").await.expect("answer");
        assert_eq!(gz.headers()["content-encoding"], "gzip");
        let plain = get(HASHED, "identity").await.expect("answer");
        assert!(plain.headers().get("content-encoding").is_none());
        assert_eq!(plain.bytes().await.expect("body").as_ref(), b"\0asm plain");

        let unhashed = get("portal.js", "br").await.expect("answer");
        assert_eq!(unhashed.status(), 200);
        assert_eq!(unhashed.headers()["cache-control"], "no-cache");
        let missing = get("nothing.wasm", "br").await.expect("answer");
        assert_eq!(missing.status(), 404);
        assert!(missing.headers().get("cache-control").is_none());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn only_content_hashed_names_are_immutable() {
        assert!(is_hashed("/pkg/portal.Yw3cJ1N5yKj0dO8H2a_x-Q.wasm"));
        assert!(is_hashed("/pkg/__wasm_split.Yw3cJ1N5yKj0dO8H2a_x-Q.js"));
        assert!(!is_hashed("/pkg/portal.wasm"));
        assert!(!is_hashed("/pkg/portal.js"));
        assert!(!is_hashed("/pkg/abcdefghijklmnopqrstuv.js"));
    }
}
