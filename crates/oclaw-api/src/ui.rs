//! The console at `/ui/` and the embeddable chat widget at `/ui/webchat.js`: static files
//! compiled into the binary (plain HTML, CSS and JavaScript, no build step), served without a
//! token — they hold no data; every call they make carries the signed-in user's token.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
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

pub async fn index() -> Response {
    asset("index.html")
}

pub async fn file(Path(name): Path<String>) -> Response {
    asset(&name)
}

fn asset(name: &str) -> Response {
    let Some((_, kind, body)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return ApiError::new(
            ErrorCode::NotFound,
            format!("the console has no file `{name}`"),
        )
        .into_response();
    };
    let mut r = (StatusCode::OK, *body).into_response();
    let h = r.headers_mut();
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
