//! The console at `/ui/` and the embeddable chat widget at `/ui/webchat.js`: static files
//! compiled into the binary (plain HTML, CSS and JavaScript, no build step), served without a
//! token — they hold no data; every call they make carries the signed-in user's token. Sent
//! gzip-compressed to clients that take it.

use std::io::Write;
use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use oclaw_core::ErrorCode;

use crate::ApiError;

/// The console's files: name, content type, body.
pub const ASSETS: &[(&str, &str, &str)] = &[
    (
        "index.html",
        "text/html; charset=utf-8",
        include_str!("../ui/index.html"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../ui/app.js"),
    ),
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../ui/app.css"),
    ),
    (
        "webchat.js",
        "text/javascript; charset=utf-8",
        include_str!("../ui/webchat.js"),
    ),
];

/// The console's pages may load only its own files and talk only to this node.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// `GET /ui/session.json`: whether this node wants a token, so the console asks for one only
/// when it must (a loopback node without tokens lets its local user straight in).
pub async fn session(
    axum::extract::State(state): axum::extract::State<crate::ApiState>,
) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "token_required": !state.tokens.is_empty() || state.oidc.is_some(),
        "oidc": state.oidc.is_some(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

pub async fn root() -> Redirect {
    Redirect::permanent("/ui/")
}

pub async fn index(headers: HeaderMap) -> Response {
    asset("index.html", &headers)
}

pub async fn file(Path(name): Path<String>, headers: HeaderMap) -> Response {
    asset(&name, &headers)
}

/// Each file gzip-compressed, made once on first use.
fn gzipped(index: usize) -> &'static [u8] {
    static GZ: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    &GZ.get_or_init(|| {
        ASSETS
            .iter()
            .map(|(_, _, body)| {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                // Writing to memory does not fail.
                let _ = enc.write_all(body.as_bytes());
                enc.finish().unwrap_or_default()
            })
            .collect()
    })[index]
}

/// Whether the client takes gzip (`Accept-Encoding: gzip`, not refused with `q=0`).
fn takes_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|e| {
            let mut parts = e.split(';');
            let coding = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            (coding.eq_ignore_ascii_case("gzip") || coding == "*") && !refused
        })
}

fn asset(name: &str, headers: &HeaderMap) -> Response {
    let Some(index) = ASSETS.iter().position(|(n, _, _)| *n == name) else {
        return ApiError::new(
            ErrorCode::NotFound,
            format!("the console has no file `{name}`"),
        )
        .into_response();
    };
    let (_, kind, body) = ASSETS[index];
    let gzip = takes_gzip(headers);
    let mut r = if gzip {
        (StatusCode::OK, gzipped(index)).into_response()
    } else {
        (StatusCode::OK, body).into_response()
    };
    let h = r.headers_mut();
    if gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    // Files change with the binary: revalidate, never serve a stale console after an upgrade.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if name == "index.html" {
        h.insert("content-security-policy", HeaderValue::from_static(CSP));
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
        h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    } else if name == "webchat.js" {
        // Embedded in other sites' pages.
        h.insert("access-control-allow-origin", HeaderValue::from_static("*"));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_go_out_gzipped_to_clients_that_take_it() {
        let mut h = HeaderMap::new();
        assert!(!takes_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip;q=0.8"),
        );
        assert!(takes_gzip(&h));
        h.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0, identity"),
        );
        assert!(!takes_gzip(&h));
        // What goes out unpacks to the file.
        for (i, (name, _, body)) in ASSETS.iter().enumerate() {
            let mut out = String::new();
            std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(gzipped(i)), &mut out)
                .unwrap_or_default();
            assert_eq!(out, *body);
            if body.len() > 4096 {
                assert!(gzipped(i).len() < body.len() / 2, "{name} compresses");
            }
        }
    }
}
