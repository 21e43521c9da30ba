//! The web dashboard and the JSON API behind it.
//!
//! `/dashboard` serves a single page whose HTML, CSS and JavaScript are compiled into the
//! binary (no CDN, works offline; the page is only a shell and holds no data). The page
//! polls the API: the pool's state every two seconds, recent requests, and charts of
//! requests and tokens per account read back from the request log.
//!
//! Every route under `/api` is listed in [`API`], built from it, and described by the
//! OpenAPI document served at `/api/openapi.json` (a test keeps the three in step). Reads
//! need a loopback client or the `admin_key`; changes need the `admin_key`, or a loopback
//! client sending JSON (see [`crate::admin`] for why that stops cross-site requests).

pub mod api;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, delete, get, patch, put};
use http::{HeaderValue, header};

use crate::admin;
use crate::state::AppState;

/// Every route under `/api`: (method, path).
pub const API: &[(&str, &str)] = &[
    ("GET", "/api/overview"),
    ("GET", "/api/requests"),
    ("GET", "/api/usage"),
    ("GET", "/api/series"),
    ("PATCH", "/api/accounts/{name}"),
    ("DELETE", "/api/accounts/{name}"),
    ("GET", "/api/scheduler"),
    ("PUT", "/api/scheduler"),
    ("GET", "/api/openapi.json"),
];

/// The OpenAPI document of [`API`].
pub const OPENAPI: &str = include_str!("openapi.json");

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

fn handler(method: &str, path: &str) -> MethodRouter<AppState> {
    match (method, path) {
        ("GET", "/api/overview") => get(api::overview),
        ("GET", "/api/requests") => get(api::requests),
        ("GET", "/api/usage") => get(api::usage),
        ("GET", "/api/series") => get(api::series),
        ("PATCH", "/api/accounts/{name}") => patch(api::change_account),
        ("DELETE", "/api/accounts/{name}") => delete(api::remove_account),
        ("GET", "/api/scheduler") => get(admin::get_scheduler),
        ("PUT", "/api/scheduler") => put(admin::put_scheduler),
        ("GET", "/api/openapi.json") => get(openapi),
        _ => panic!("no handler for {method} {path}: add it to dashboard::handler"),
    }
}

/// The dashboard's page and assets, and every `/api` route.
pub fn routes() -> Router<AppState> {
    let mut paths: Vec<(&str, MethodRouter<AppState>)> = Vec::new();
    for (method, path) in API {
        let route = handler(method, path);
        match paths.iter_mut().find(|(p, _)| p == path) {
            Some((_, existing)) => {
                let merged = std::mem::take(existing).merge(route);
                *existing = merged;
            }
            None => paths.push((path, route)),
        }
    }
    let mut router = Router::new()
        .route("/dashboard", get(index))
        .route("/dashboard/", get(index))
        .route("/dashboard/app.js", get(app_js))
        .route("/dashboard/style.css", get(style_css));
    for (path, route) in paths {
        router = router.route(path, route);
    }
    router
}

async fn index() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8")
}

async fn app_js() -> Response {
    asset(APP_JS, "text/javascript; charset=utf-8")
}

async fn style_css() -> Response {
    asset(STYLE_CSS, "text/css; charset=utf-8")
}

async fn openapi() -> Response {
    let mut response = OPENAPI.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A static asset, with headers that keep it from being framed (the page has buttons that
/// change things) or from loading anything from elsewhere.
fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_api_route_has_a_handler() {
        for (method, path) in API {
            let _ = handler(method, path);
        }
        let _ = routes();
    }

    #[test]
    fn the_openapi_document_describes_exactly_the_api() {
        let document: serde_json::Value = serde_json::from_str(OPENAPI).expect("valid JSON");
        assert_eq!(document["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        let mut documented = BTreeSet::new();
        for (path, item) in document["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("path item") {
                if method == "parameters" {
                    continue;
                }
                assert!(
                    operation["responses"].is_object(),
                    "{method} {path} documents no responses"
                );
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
        let served: BTreeSet<(String, String)> = API
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        assert_eq!(documented, served);
    }
}
