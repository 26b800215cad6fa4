//! The H5 client (`web_dir`), served with the headers that keep it from being framed by
//! another site, from having a response sniffed into another type, and from running any
//! script it did not ship.
//!
//! The Content-Security-Policy allows what Trunk's output needs and nothing else: scripts
//! from this origin plus the one inline module script Trunk writes into `index.html` (by its
//! SHA-256, read from the file, and read again when the file changes, so a rebuilt client is
//! served with its own hash), WebAssembly compilation (`'wasm-unsafe-eval'`, which allows no
//! JavaScript `eval`), styles and fetches from this origin, and WebSockets to any server (the
//! login form lets a user choose one). `frame-ancestors 'none'` and `X-Frame-Options: DENY`
//! forbid framing (clickjacking), `X-Content-Type-Options: nosniff` type sniffing. The API's
//! Swagger UI (`/api/docs`) is not the H5 client and keeps its own page.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine;
use tower_http::services::{ServeDir, ServeFile};

/// The policy without its script hashes, which [`script_src`] fills in.
const POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{hashes}; \
                      style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; \
                      object-src 'none'; base-uri 'none'; form-action 'self'; \
                      frame-ancestors 'none'";
/// The policy of the page shown when no client is built: it has no script at all.
const NO_CLIENT_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// The built H5 client in `dir`, with `index.html` for any path that is not a file (client
/// routing), every response carrying the headers above.
pub(crate) fn client(dir: &Path) -> Router {
    let index = dir.join("index.html");
    let files = ServeDir::new(dir)
        .precompressed_gzip()
        .fallback(ServeFile::new(&index));
    let policy = Arc::new(Policy {
        index,
        cached: Mutex::new(None),
    });
    Router::new()
        .fallback_service(files)
        .layer(axum::middleware::map_response_with_state(
            policy,
            with_headers,
        ))
}

/// The page served at every path when no H5 client is built.
pub(crate) async fn no_client() -> impl IntoResponse {
    let mut headers = protection();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(NO_CLIENT_POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (
        headers,
        Html(
            "<!doctype html><meta charset=utf-8><title>hongyan</title>\
             <h1>hongyan is running</h1>\
             <p>The H5 client is not built. Run <code>scripts/serve</code> (it builds the client \
             and starts the server), or pass <code>--web-dir</code> pointing at a built client.</p>\
             <p>MobileIMSDK WebSocket clients connect to <code>/websocket</code>.</p>",
        ),
    )
}

/// `X-Frame-Options` and `X-Content-Type-Options`, which every response of the client gets.
fn protection() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers
}

async fn with_headers(State(policy): State<Arc<Policy>>, mut response: Response) -> Response {
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|t| t.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html"));
    let headers = response.headers_mut();
    headers.extend(protection());
    if html {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy.header());
    }
    response
}

/// The client's Content-Security-Policy, kept with the `index.html` it was made from.
struct Policy {
    index: PathBuf,
    cached: Mutex<Option<(Option<SystemTime>, HeaderValue)>>,
}

impl Policy {
    /// The policy for the current `index.html`, made again when the file changed.
    fn header(&self) -> HeaderValue {
        let modified = std::fs::metadata(&self.index)
            .and_then(|m| m.modified())
            .ok();
        let mut cached = self
            .cached
            .lock()
            .expect("the policy lock is never held across a panic-prone section");
        if let Some((when, value)) = &*cached
            && *when == modified
        {
            return value.clone();
        }
        let html = std::fs::read_to_string(&self.index).unwrap_or_default();
        let value = HeaderValue::from_str(&POLICY.replace("{hashes}", &script_src(&html)))
            .expect("hashes are base64, which a header value may hold");
        *cached = Some((modified, value.clone()));
        value
    }
}

/// ` 'sha256-…'` for every inline script of `html` (a `<script>` without `src`).
fn script_src(html: &str) -> String {
    let mut hashes = String::new();
    let mut rest = html;
    while let Some(start) = rest.find("<script") {
        let tag = &rest[start..];
        let Some(open_end) = tag.find('>') else { break };
        let Some(close) = tag[open_end..].find("</script>") else {
            break;
        };
        let opening = &tag[..open_end];
        let body = &tag[open_end + 1..open_end + close];
        if !opening.contains("src=") {
            let digest = ring::digest::digest(&ring::digest::SHA256, body.as_bytes());
            let encoded = base64::engine::general_purpose::STANDARD.encode(digest);
            hashes.push_str(&format!(" 'sha256-{encoded}'"));
        }
        rest = &tag[open_end + close + "</script>".len()..];
    }
    hashes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_scripts_are_allowed_by_their_hash_and_others_by_origin() {
        let html = "<html><script src=\"/a.js\"></script><script type=\"module\">\n\
                    import init from '/x.js';\n</script><p>no script</p>";
        let expected = base64::engine::general_purpose::STANDARD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            b"\nimport init from '/x.js';\n",
        ));
        assert_eq!(script_src(html), format!(" 'sha256-{expected}'"));
        assert_eq!(script_src("<p>none</p><script"), "");
    }
}
