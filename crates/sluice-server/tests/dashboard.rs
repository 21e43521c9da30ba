//! The web dashboard and its API over real sockets: the page and its assets are served from
//! the binary with headers that keep them self-contained; every documented route answers;
//! reads and changes are guarded; account actions take effect at once.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::upkeep::{Upkeep, key_account};
use sluice_config::Secret;
use sluice_fake::Reply;
use sluice_store::{NewAccount, Profile, SqliteStore, Store, StoredCredential};

const CLI_KEY: &str = "sk-ant-api03-dashboard-cli";
const CONFIG_KEY: &str = "sk-ant-api03-dashboard-config";
const ADMIN_KEY: &str = "sk-sluice-admin-dashboard";

/// sluice with a CLI-added account (`cli`) and a config-declared one (`declared`).
async fn start(dir: &std::path::Path) -> Upkeep {
    let store = SqliteStore::open(dir).unwrap();
    store
        .add_account(NewAccount {
            name: "cli".into(),
            provider: "anthropic".into(),
            credential: StoredCredential::ApiKey(Secret::from(CLI_KEY)),
            priority: 0,
            weight: 1,
            enabled: true,
            profile: Profile::default(),
        })
        .unwrap();
    let fake =
        Arc::new(sluice_fake::FakeAnthropic::start(sluice_fake::FakeConfig::default()).unwrap());
    fake.add_account(CLI_KEY);
    fake.add_account(CONFIG_KEY);
    Upkeep::start_with_store(fake, dir, Arc::new(store), |config, _| {
        config.accounts.push(key_account("declared", CONFIG_KEY));
        config.admin_key = Some(ADMIN_KEY.to_owned().into());
    })
    .await
}

fn json_request(
    h: &Upkeep,
    method: reqwest::Method,
    path: &str,
    body: &str,
) -> reqwest::RequestBuilder {
    h.client
        .request(method, h.url(path))
        .header("content-type", "application/json")
        .body(body.to_owned())
}

async fn state_of(h: &Upkeep, name: &str) -> Option<String> {
    h.account_status(name)
        .await
        .map(|a| a["state"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn the_page_is_self_contained_and_cannot_be_framed() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path()).await;
    let page = h.client.get(h.url("/dashboard")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"));
    let html = page.text().await.unwrap();
    assert!(html.contains("/dashboard/app.js") && html.contains("/dashboard/style.css"));
    for (path, kind) in [
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/style.css", "text/css"),
    ] {
        let asset = h.client.get(h.url(path)).send().await.unwrap();
        assert_eq!(asset.status(), 200, "{path}");
        assert!(
            asset.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind)
        );
        // (The SVG namespace is a name, not an address.)
        let text = asset
            .text()
            .await
            .unwrap()
            .replace("http://www.w3.org/2000/svg", "");
        // Nothing is fetched from elsewhere: the dashboard works offline.
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{path} reaches out"
        );
        assert!(
            !text.contains("innerHTML"),
            "{path} must not build HTML from data"
        );
    }
    assert!(!html.contains("https://"), "the page reaches out");
    h.stop().await;
}

#[tokio::test]
async fn every_documented_route_answers_and_nothing_else_does() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path()).await;
    let document: serde_json::Value = h.get_json("/api/openapi.json").await;
    let paths = document["paths"].as_object().unwrap();
    let mut checked = 0;
    for (path, item) in paths {
        for (method, _) in item.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let concrete = path.replace("{name}", "no-such-account");
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = if method == reqwest::Method::PUT {
                "{}"
            } else {
                "{\"enabled\":true}"
            };
            let response = json_request(&h, method.clone(), &concrete, body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            assert_ne!(status, 405, "{method} {path} is documented but not served");
            assert!(
                !text.contains("sluice does not serve"),
                "{method} {path} is documented but not routed: {text}"
            );
            if path.contains("{name}") {
                assert_eq!(status, 404, "{method} {path}: {text}");
                assert!(text.contains("no account named"), "{text}");
            } else {
                assert_eq!(status, 200, "{method} {path}: {text}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, sluice_server::dashboard::API.len());
    let unknown = h
        .client
        .get(h.url("/api/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    h.stop().await;
}

#[tokio::test]
async fn reads_and_changes_are_guarded() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path()).await;
    // A page on another domain that resolves to 127.0.0.1 (DNS rebinding) is refused…
    let rebound = h
        .client
        .get(h.url("/api/overview"))
        .header("host", "attacker.example:8787")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), 401);
    let rebound = json_request(
        &h,
        reqwest::Method::PATCH,
        "/api/accounts/cli",
        "{\"enabled\":false}",
    )
    .header("host", "attacker.example")
    .send()
    .await
    .unwrap();
    assert_eq!(rebound.status(), 401);
    // …unless it holds the admin key.
    let keyed = h
        .client
        .get(h.url("/api/overview"))
        .header("host", "sluice.example")
        .header("x-api-key", ADMIN_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(keyed.status(), 200);
    // A change from this machine needs JSON (a form post cannot send it cross-site).
    let form = h
        .client
        .patch(h.url("/api/accounts/cli"))
        .header("content-type", "text/plain")
        .body("{\"enabled\":false}")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 401);
    assert_eq!(state_of(&h, "cli").await.as_deref(), Some("available"));
    let overview: serde_json::Value = h.get_json("/api/overview").await;
    assert_eq!(overview["status"]["accounts"].as_array().unwrap().len(), 2);
    assert!(overview["request_log"]["enabled"].as_bool().unwrap());
    let text = overview.to_string();
    for secret in [CLI_KEY, CONFIG_KEY, ADMIN_KEY] {
        assert!(!text.contains(secret));
    }
    h.stop().await;
}

#[tokio::test]
async fn account_actions_take_effect_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(dir.path()).await;
    let patch =
        |path: &str, body: &str| json_request(&h, reqwest::Method::PATCH, path, body).send();

    let disabled = patch("/api/accounts/cli", "{\"enabled\":false}")
        .await
        .unwrap();
    assert_eq!(disabled.status(), 200, "{}", disabled.text().await.unwrap());
    // Applied before the answer, not at the store watcher's next look.
    assert_eq!(state_of(&h, "cli").await.as_deref(), Some("disabled"));
    assert!(
        !h.store.account("cli").unwrap().unwrap().enabled,
        "kept in the store"
    );

    let changed = patch(
        "/api/accounts/cli",
        "{\"enabled\":true,\"priority\":3,\"name\":\"renamed\"}",
    )
    .await
    .unwrap();
    assert_eq!(changed.status(), 200);
    let changed: serde_json::Value = changed.json().await.unwrap();
    assert_eq!(changed["account"], "renamed");
    let renamed = h
        .account_status("renamed")
        .await
        .expect("renamed in the pool");
    assert_eq!(renamed["state"], "available");
    assert_eq!(renamed["priority"], 3);
    assert!(h.account_status("cli").await.is_none());

    let declared = patch("/api/accounts/declared", "{\"enabled\":false}")
        .await
        .unwrap();
    assert_eq!(declared.status(), 400);
    assert!(
        declared
            .text()
            .await
            .unwrap()
            .contains("declared in the config file")
    );
    assert_eq!(state_of(&h, "declared").await.as_deref(), Some("available"));

    let bad = patch("/api/accounts/renamed", "{\"name\":\"\"}")
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let unknown_field = patch("/api/accounts/renamed", "{\"weight\":5}")
        .await
        .unwrap();
    assert_eq!(unknown_field.status(), 400);

    // Removal waits for an idle account. (Priority -1: the next request goes to it.)
    let preferred = patch("/api/accounts/renamed", "{\"priority\":-1}")
        .await
        .unwrap();
    assert_eq!(preferred.status(), 200);
    h.fake
        .script(CLI_KEY, [Reply::ok().delay(Duration::from_secs(30))]);
    h.fake
        .script(CONFIG_KEY, [Reply::ok().delay(Duration::from_secs(30))]);
    let client = h.client.clone();
    let url = h.url("/v1/messages");
    let busy = tokio::spawn(async move {
        let _ = client
            .post(url)
            .header("content-type", "application/json")
            .body(common::plain_body().to_string())
            .send()
            .await;
    });
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while h.account_status("renamed").await.unwrap()["in_flight"] != 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no request went in flight"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = json_request(&h, reqwest::Method::DELETE, "/api/accounts/renamed", "")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("in flight"));
    assert!(h.account_status("renamed").await.is_some());
    busy.abort();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while h.account_status("renamed").await.unwrap()["in_flight"] != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the request never ended"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let removed = json_request(&h, reqwest::Method::DELETE, "/api/accounts/renamed", "")
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), 200, "{}", removed.text().await.unwrap());
    assert!(h.account_status("renamed").await.is_none());
    assert!(h.store.account("renamed").unwrap().is_none());
    h.stop().await;
}
