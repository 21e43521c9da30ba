//! Which pool and which dialect a request belongs to.
//!
//! The path decides, with two refinements:
//! - paths Codex shares with other clients (`/v1/responses`, `/v1/models`) go to the Codex
//!   pool only when the client names itself Codex (`originator: codex_…`), to the OpenAI or
//!   Anthropic pool otherwise;
//! - `POST /v1/chat/completions` is decided by the body's `model`: a Claude model is served
//!   by the Anthropic pool through the Chat Completions bridge, any other by OpenAI keys.
//!
//! | path | pool | dialect |
//! |---|---|---|
//! | `/v1internal:{method}` | gemini | Code Assist (Google logins) |
//! | `/v1beta/models`, `/v1beta/models/{model}:{action}` | gemini | Gemini API (keys) |
//! | `/backend-api/codex/*`, `/backend-api/wham/usage`, `/api/codex/usage` | codex | Responses |
//! | `GET /v1/responses` (the WebSocket attempt) | codex | answered locally: 426 |
//! | `/v1/responses`, `/v1/responses/compact`, `GET /v1/models` from Codex | codex | Responses |
//! | `POST /v1/chat/completions`, Claude model | anthropic | Chat Completions bridge |
//! | `POST /v1/chat/completions`, other model | openai | Chat Completions |
//! | `POST /v1/responses`, `/v1/responses/compact`, not Codex | openai | Responses |
//! | `POST /v1/messages`, every other `/v1/*` | anthropic | Messages |

use std::borrow::Cow;
use std::sync::Arc;

use http::{HeaderMap, Method};
use serde::Deserialize;
use sluice_config::ProviderKind;

use super::{Provider, Providers, Route, RouteKind, anthropic, claude_chat, codex, gemini, openai};

/// A route decided by the path alone, or one that waits for the body's `model`.
pub enum Pending {
    Ready(Route),
    /// `POST /v1/chat/completions`: the Claude bridge or OpenAI, by model.
    ByModel {
        claude: Route,
        other: Route,
    },
}

impl Pending {
    /// The provider that renders errors before the body is read (both Chat Completions
    /// routes speak OpenAI's error shape).
    pub fn error_provider(&self) -> &Arc<dyn Provider> {
        match self {
            Pending::Ready(route) => &route.provider,
            Pending::ByModel { other, .. } => &other.provider,
        }
    }

    /// The route, once the body is known.
    pub fn resolve(self, body: &[u8]) -> Route {
        match self {
            Pending::Ready(route) => route,
            Pending::ByModel { claude, other } => match requested_model(body) {
                Some(model) if claude_chat::serves_model(&model) => claude,
                _ => other,
            },
        }
    }
}

fn requested_model(body: &[u8]) -> Option<Cow<'_, str>> {
    #[derive(Deserialize)]
    struct Peek<'a> {
        #[serde(borrow)]
        model: Option<Cow<'a, str>>,
    }
    serde_json::from_slice::<Peek<'_>>(body).ok()?.model
}

/// Route a request by its method, path and (for shared paths) headers. `None`: not an API
/// sluice serves.
pub fn route(
    providers: &Providers,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Option<Pending> {
    let ready = |pool: ProviderKind, kind: RouteKind, provider: &Arc<dyn Provider>| {
        Some(Pending::Ready(Route {
            pool,
            kind,
            provider: provider.clone(),
        }))
    };
    if path.starts_with("/v1internal:") || path.starts_with("/v1beta/") || path == "/v1beta" {
        let (dialect, kind) = gemini::route(method, path)?;
        return ready(ProviderKind::Gemini, kind, providers.gemini(dialect));
    }
    if let Some(kind) = codex::route(method, path) {
        // Its own paths are Codex's; the OpenAI-style paths only when Codex is the client.
        // Any client's WebSocket attempt on /v1/responses gets the same refusal.
        let shared = path.starts_with("/v1/");
        if !shared || kind == RouteKind::Local || codex::is_codex_client(headers) {
            return ready(
                ProviderKind::Codex,
                kind,
                providers.get(ProviderKind::Codex),
            );
        }
    }
    if method == Method::POST && path == "/v1/chat/completions" {
        return Some(Pending::ByModel {
            claude: Route {
                pool: ProviderKind::Anthropic,
                kind: RouteKind::Generate,
                provider: providers.claude_chat(),
            },
            other: Route {
                pool: ProviderKind::OpenAI,
                kind: RouteKind::Generate,
                provider: providers.get(ProviderKind::OpenAI).clone(),
            },
        });
    }
    if method == Method::POST && matches!(path, "/v1/responses" | "/v1/responses/compact") {
        let kind = openai::route(method, "/v1/responses")?;
        return ready(
            ProviderKind::OpenAI,
            kind,
            providers.get(ProviderKind::OpenAI),
        );
    }
    let kind = anthropic::route(method, path)?;
    ready(
        ProviderKind::Anthropic,
        kind,
        providers.get(ProviderKind::Anthropic),
    )
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::provider::test_support::headers;

    fn pool_of(
        method: Method,
        path: &str,
        hdrs: &HeaderMap,
        body: &str,
    ) -> Option<(ProviderKind, RouteKind)> {
        let providers = Providers::default();
        route(&providers, &method, path, hdrs)
            .map(|pending| pending.resolve(body.as_bytes()))
            .map(|route| (route.pool, route.kind))
    }

    #[test]
    fn paths_models_and_clients_decide_the_pool() {
        let none = HeaderMap::new();
        let codex = headers(&[("originator", "codex_cli_rs")]);
        use ProviderKind::*;
        use RouteKind::*;
        /// Method, path, headers, body, and the pool and kind expected.
        type Case<'a> = (
            Method,
            &'a str,
            &'a HeaderMap,
            &'a str,
            Option<(ProviderKind, RouteKind)>,
        );
        let cases: &[Case<'_>] = &[
            (
                Method::POST,
                "/v1/messages",
                &none,
                "{}",
                Some((Anthropic, Generate)),
            ),
            (
                Method::POST,
                "/v1/messages/count_tokens",
                &none,
                "{}",
                Some((Anthropic, Auxiliary)),
            ),
            (
                Method::GET,
                "/v1/models",
                &none,
                "",
                Some((Anthropic, Auxiliary)),
            ),
            (
                Method::GET,
                "/v1/models",
                &codex,
                "",
                Some((Codex, Auxiliary)),
            ),
            (
                Method::POST,
                "/v1/responses",
                &codex,
                "{}",
                Some((Codex, Generate)),
            ),
            (
                Method::POST,
                "/v1/responses/compact",
                &codex,
                "{}",
                Some((Codex, Generate)),
            ),
            (
                Method::POST,
                "/v1/responses",
                &none,
                "{}",
                Some((OpenAI, Generate)),
            ),
            (
                Method::POST,
                "/v1/responses/compact",
                &none,
                "{}",
                Some((OpenAI, Generate)),
            ),
            (
                Method::GET,
                "/v1/responses",
                &codex,
                "",
                Some((Codex, Local)),
            ),
            (
                Method::GET,
                "/v1/responses",
                &none,
                "",
                Some((Codex, Local)),
            ),
            (
                Method::POST,
                "/backend-api/codex/responses",
                &none,
                "{}",
                Some((Codex, Generate)),
            ),
            (
                Method::GET,
                "/backend-api/wham/usage",
                &none,
                "",
                Some((Codex, Local)),
            ),
            (
                Method::GET,
                "/api/codex/usage",
                &none,
                "",
                Some((Codex, Local)),
            ),
            (
                Method::POST,
                "/v1/chat/completions",
                &none,
                r#"{"model":"claude-sonnet-4-5","messages":[]}"#,
                Some((Anthropic, Generate)),
            ),
            (
                Method::POST,
                "/v1/chat/completions",
                &none,
                r#"{"model":"gpt-4o-mini","messages":[]}"#,
                Some((OpenAI, Generate)),
            ),
            (
                Method::POST,
                "/v1/chat/completions",
                &none,
                "not json",
                Some((OpenAI, Generate)),
            ),
            (
                Method::POST,
                "/v1internal:streamGenerateContent",
                &none,
                "{}",
                Some((Gemini, Generate)),
            ),
            (
                Method::POST,
                "/v1internal:loadCodeAssist",
                &none,
                "{}",
                Some((Gemini, Auxiliary)),
            ),
            (
                Method::POST,
                "/v1beta/models/gemini-2.5-pro:streamGenerateContent",
                &none,
                "{}",
                Some((Gemini, Generate)),
            ),
            (
                Method::GET,
                "/v1beta/models",
                &none,
                "",
                Some((Gemini, Auxiliary)),
            ),
            (
                Method::POST,
                "/v1internal:deleteEverything",
                &none,
                "{}",
                None,
            ),
            (Method::GET, "/v2/elsewhere", &none, "", None),
        ];
        for (method, path, hdrs, body, expected) in cases {
            assert_eq!(
                pool_of(method.clone(), path, hdrs, body),
                *expected,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn the_dialect_follows_the_route() {
        let providers = Providers::default();
        let api = route(
            &providers,
            &Method::POST,
            "/v1beta/models/gemini-2.5-pro:generateContent",
            &HeaderMap::new(),
        )
        .unwrap()
        .resolve(b"{}");
        assert!(Arc::ptr_eq(
            &api.provider,
            providers.gemini(gemini::Dialect::Api)
        ));
        let chat = route(
            &providers,
            &Method::POST,
            "/v1/chat/completions",
            &HeaderMap::new(),
        )
        .unwrap();
        let (status, _, _) = chat
            .error_provider()
            .error_response(&crate::error::ProxyError::new(
                crate::error::ErrorKind::RequestTooLarge,
                "too big",
            ));
        assert_eq!(status.as_u16(), 413);
    }
}
