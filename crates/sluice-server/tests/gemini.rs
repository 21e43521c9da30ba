//! The Gemini CLI through sluice, against the fake Google upstream over real sockets: Code
//! Assist with Google logins (each account's own project discovered, remembered and put in
//! every body; the CLI's `loadCodeAssist` answered for the pool), the Gemini API with keys
//! (the client's key stripped), each dialect on its own kind of account, quota from
//! `RESOURCE_EXHAUSTED` bodies and the `retrieveUserQuota` probe, failover on an error chunk
//! at a stream's opening, Google's form-encoded non-rotating refresh, and a multi-turn CLI
//! session — built from the captured request shapes — staying on one account.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::pools::{Captured, Pools, data_events, key, login};
use serde_json::{Value, json};
use sluice_config::{AccountOptions, ProviderKind};
use sluice_fake::{ApiReply, GeminiQuotaBucket};
use sluice_server::provider::gemini::POOL_PROJECT;

fn google(name: &str, token: &str) -> sluice_config::AccountConfig {
    login(
        name,
        ProviderKind::Gemini,
        token,
        None,
        None,
        AccountOptions::default(),
    )
}

/// The captured Code Assist stream as turn `turn` of session `session`: the same
/// `request.session_id` every turn, a new `user_prompt_id` per prompt, and the whole
/// history resent, as the CLI does.
fn code_assist_turn(session: &str, turn: usize) -> (Captured, Value) {
    let captured = Captured::load("gemini_cli_codeassist_stream.json");
    let mut body = captured.body.clone();
    body["project"] = json!(POOL_PROJECT);
    body["user_prompt_id"] = json!(if turn == 0 {
        session.to_owned()
    } else {
        format!("{session}########{turn}")
    });
    body["request"]["session_id"] = json!(session);
    let contents = body["request"]["contents"].as_array_mut().unwrap();
    for earlier in 1..=turn {
        contents.push(json!({"role": "model", "parts": [{"text": format!("answer {earlier}")}]}));
        contents.push(json!({"role": "user", "parts": [{"text": format!("question {earlier}")}]}));
    }
    (captured, body)
}

/// The CLI's routing call that precedes each turn (a small `generateContent`).
fn router_call(session: &str, turn: usize) -> (Captured, Value) {
    let captured = Captured::load("gemini_cli_apikey_router.json");
    let mut body = captured.body.clone();
    body["project"] = json!(POOL_PROJECT);
    body["user_prompt_id"] = json!(format!("{session}########{turn}"));
    body["request"]["session_id"] = json!(session);
    (captured, body)
}

async fn send(pools: &Pools, (captured, body): (Captured, Value)) -> reqwest::Response {
    captured
        .request(&pools.client, &pools.url, Some(&body))
        .send()
        .await
        .unwrap()
}

fn served_by(response: &reqwest::Response) -> String {
    response.headers()["x-sluice-account"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn code_assist_runs_each_account_on_its_own_discovered_project() {
    let pools = Pools::start(|up| {
        up.gemini.add_code_assist_account("ya29.one", "proj-one");
        up.gemini.add_code_assist_account("ya29.two", "proj-two");
        vec![google("one", "ya29.one"), google("two", "ya29.two")]
    })
    .await;

    // The CLI's start-up call: answered by a pooled account, shown the pool's project.
    let load = Captured::load("gemini_cli_codeassist_load.json");
    let response = load
        .request(&pools.client, &pools.url, None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["cloudaicompanionProject"], POOL_PROJECT);
    assert_eq!(answer["currentTier"]["id"], "standard-tier");

    // Turns in two sessions: whichever account serves, its own project goes upstream (the
    // fake refuses any other with 403).
    for session in ["s-1", "s-2", "s-3", "s-4"] {
        let response = send(&pools, code_assist_turn(session, 0)).await;
        assert_eq!(response.status(), 200);
        let events = data_events(&response.bytes().await.unwrap());
        assert!(events.last().unwrap()["response"]["candidates"][0]["finishReason"] == "STOP");
    }
    for recorded in pools.up.gemini.requests() {
        let Some(body) = recorded.json() else {
            continue;
        };
        let Some(project) = body["project"].as_str() else {
            continue;
        };
        let own = match recorded.credential.as_deref() {
            Some("ya29.one") => "proj-one",
            Some("ya29.two") => "proj-two",
            other => panic!("unexpected credential {other:?}"),
        };
        assert_eq!(project, own, "{}", recorded.path);
        assert_ne!(
            recorded.header("authorization"),
            Some("Bearer ya29....<redacted len=29>")
        );
    }

    // Discovered once per account, remembered in the store.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let projects: Vec<Option<String>> = ["one", "two"]
            .iter()
            .map(|n| pools.store.account(n).unwrap().unwrap().profile.project)
            .collect();
        let used: Vec<&str> = pools
            .up
            .gemini
            .requests()
            .iter()
            .filter(|r| r.path == "/v1internal:streamGenerateContent")
            .filter_map(|r| r.credential.clone())
            .map(|c| if c == "ya29.one" { "one" } else { "two" })
            .collect::<std::collections::HashSet<_>>()
            .into_iter()
            .collect();
        let remembered = used.iter().all(|name| {
            let i = if *name == "one" { 0 } else { 1 };
            projects[i].as_deref()
                == Some(if *name == "one" {
                    "proj-one"
                } else {
                    "proj-two"
                })
        });
        if remembered {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "projects not remembered: {projects:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    pools.stop().await;
}

#[tokio::test]
async fn resource_exhausted_fails_over_and_benches_until_the_reset() {
    let pools = Pools::start(|up| {
        up.gemini.add_code_assist_account("ya29.one", "proj-one");
        up.gemini.add_code_assist_account("ya29.two", "proj-two");
        up.gemini
            .set_default("ya29.one", ApiReply::status(429).retry_after(120));
        vec![
            login(
                "one",
                ProviderKind::Gemini,
                "ya29.one",
                None,
                None,
                AccountOptions {
                    project: Some("proj-one".into()),
                    ..AccountOptions::default()
                },
            ),
            login(
                "two",
                ProviderKind::Gemini,
                "ya29.two",
                None,
                None,
                AccountOptions {
                    project: Some("proj-two".into()),
                    ..AccountOptions::default()
                },
            ),
        ]
    })
    .await;
    for session in 0..4 {
        let response = send(&pools, code_assist_turn(&format!("s{session}"), 0)).await;
        assert_eq!(response.status(), 200);
        assert_eq!(served_by(&response), "two");
        response.bytes().await.unwrap();
    }
    let one = pools.account("one").await;
    assert_eq!(one["state"], "rate_limited");
    let left = one["until"].as_i64().unwrap() - common::upkeep::now_ms();
    assert!(
        left > 100_000 && left <= 120_000,
        "benched for retryDelay: {one:#}"
    );
    assert!(
        pools
            .up
            .gemini
            .requests()
            .iter()
            .all(|r| r.path != "/v1internal:loadCodeAssist"),
        "configured projects need no discovery"
    );

    // An error chunk at a stream's opening is a failure before the first byte: fail over.
    pools
        .up
        .gemini
        .script("ya29.two", [ApiReply::ok().fail_after(0)]);
    let response = send(&pools, code_assist_turn("s9", 0)).await;
    assert_eq!(response.status(), 429, "every account is out now");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["status"], "RESOURCE_EXHAUSTED");
    pools.stop().await;
}

#[tokio::test]
async fn gemini_api_requests_get_the_pooled_key_and_the_clients_is_dropped() {
    let pools = Pools::start(|up| {
        up.gemini.add_api_key("AIza-pooled");
        up.gemini.set_default(
            "AIza-pooled",
            ApiReply::ok().text(["a", "b", "c"]).tokens(40, 6),
        );
        vec![key("k", ProviderKind::Gemini, "AIza-pooled")]
    })
    .await;
    let mut captured = Captured::load("gemini_cli_apikey_stream.json");
    captured.path.push_str("&key=the-clients-own");
    let response = captured
        .request(&pools.client, &pools.url, None)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    assert!(
        body.windows(2).any(|w| w == b"\r\n"),
        "CRLF events pass as they are"
    );
    assert_eq!(data_events(&body).len(), 3);
    let recorded = &pools.up.gemini.requests()[0];
    assert_eq!(recorded.credential.as_deref(), Some("AIza-pooled"));
    assert_eq!(recorded.header("x-goog-api-key"), Some("AIza-pooled"));
    assert!(!recorded.path.contains("the-clients-own"));
    let status = pools.account("k").await;
    assert_eq!(status["completed"], 1);
    assert_eq!(status["tokens"]["output"], 6);
    pools.stop().await;
}

#[tokio::test]
async fn each_dialect_is_served_only_by_its_own_kind_of_account() {
    // Only keys: a Code Assist request is refused at once, in Google's error shape.
    let pools = Pools::start(|up| {
        up.gemini.add_api_key("AIza-pooled");
        vec![key("k", ProviderKind::Gemini, "AIza-pooled")]
    })
    .await;
    let response = send(&pools, code_assist_turn("s", 0)).await;
    assert_eq!(response.status(), 503);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["status"], "UNAVAILABLE");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Google-login"),
        "{error}"
    );
    assert_eq!(pools.up.gemini.request_count(), 0);
    pools.stop().await;

    // Both kinds: each request goes to its own.
    let pools = Pools::start(|up| {
        up.gemini.add_api_key("AIza-pooled");
        up.gemini.add_code_assist_account("ya29.one", "proj-one");
        vec![
            key("k", ProviderKind::Gemini, "AIza-pooled"),
            google("g", "ya29.one"),
        ]
    })
    .await;
    for session in 0..3 {
        let response = send(&pools, code_assist_turn(&format!("s{session}"), 0)).await;
        assert_eq!(served_by(&response), "g");
        response.bytes().await.unwrap();
        let api = Captured::load("gemini_cli_apikey_stream.json");
        let response = api
            .request(&pools.client, &pools.url, None)
            .send()
            .await
            .unwrap();
        assert_eq!(served_by(&response), "k");
        response.bytes().await.unwrap();
    }
    pools.stop().await;
}

#[tokio::test]
async fn google_tokens_refresh_form_encoded_and_keep_their_refresh_token() {
    let expired = common::upkeep::now_ms() - 1000;
    let pools = Pools::start(|up| {
        up.gemini.add_code_assist_account("acct-g", "proj-g");
        up.gemini.expire_access_token("acct-g");
        up.gemini.set_refresh_token("acct-g", "1//refresh-g");
        vec![login(
            "g",
            ProviderKind::Gemini,
            "ya29.expired",
            Some("1//refresh-g"),
            Some(expired),
            AccountOptions::default(),
        )]
    })
    .await;
    let response = send(&pools, code_assist_turn("s", 0)).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    assert!(pools.up.gemini.refreshes() >= 1);
    let token_call = pools
        .up
        .gemini
        .requests()
        .into_iter()
        .find(|r| r.path == "/token")
        .unwrap();
    assert!(
        token_call
            .header("content-type")
            .unwrap()
            .starts_with("application/x-www-form-urlencoded")
    );
    let form: HashMap<String, String> = url::form_urlencoded::parse(&token_call.body)
        .into_owned()
        .collect();
    assert_eq!(form["grant_type"], "refresh_token");
    assert!(!form["client_secret"].is_empty());
    let stored = pools.store.account("g").unwrap().unwrap();
    let tokens = stored.oauth().unwrap();
    assert_eq!(
        tokens.refresh_token.as_ref().unwrap().expose(),
        "1//refresh-g",
        "Google refresh tokens do not rotate"
    );
    assert!(
        tokens
            .access_token
            .expose()
            .starts_with("ya29.fake-acct-g-")
    );
    assert!(tokens.expires_at_ms.unwrap() > common::upkeep::now_ms());
    pools.stop().await;
}

#[tokio::test]
async fn idle_google_logins_are_probed_through_retrieve_user_quota() {
    let pools = Pools::start_with(
        |up| {
            up.gemini.add_code_assist_account("ya29.one", "proj-one");
            up.gemini.set_user_quota(
                "ya29.one",
                vec![GeminiQuotaBucket {
                    model: "gemini-2.5-pro".into(),
                    remaining_fraction: 0.25,
                    reset_after: Duration::from_secs(3600),
                }],
            );
            vec![google("one", "ya29.one")]
        },
        |config| config.oauth.usage_probe_interval = Duration::from_millis(300),
    )
    .await;
    pools
        .wait_for(Duration::from_secs(10), "the probe's quota", |status| {
            status["accounts"][0]["quota"]["requests"]["remaining"] == 250
        })
        .await;
    let probe = pools
        .up
        .gemini
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1internal:retrieveUserQuota")
        .unwrap();
    assert_eq!(probe.json().unwrap()["project"], "proj-one", "set up first");
    pools.stop().await;
}

/// Sessions of the Gemini CLI, each a run of turns (a routing call, then the streamed
/// turn) built from the captured requests: every turn of a session lands on the account
/// that served its first, although `user_prompt_id` changes every turn. Prints how the
/// sessions spread.
#[tokio::test]
async fn a_multi_turn_gemini_cli_session_stays_on_one_account() {
    const ACCOUNTS: usize = 3;
    const SESSIONS: usize = 6;
    const TURNS: usize = 8;
    let pools = Pools::start(|up| {
        (0..ACCOUNTS)
            .map(|i| {
                let token = format!("ya29.acct{i}");
                up.gemini
                    .add_code_assist_account(&token, &format!("proj-{i}"));
                google(&format!("g{i}"), &token)
            })
            .collect()
    })
    .await;
    let mut per_session: Vec<Vec<String>> = vec![Vec::new(); SESSIONS];
    for turn in 0..TURNS {
        for (session, served) in per_session.iter_mut().enumerate() {
            let id = format!("0199-gemini-session-{session}");
            if turn > 0 {
                let response = send(&pools, router_call(&id, turn)).await;
                assert_eq!(response.status(), 200);
                served.push(served_by(&response));
                response.bytes().await.unwrap();
            }
            let response = send(&pools, code_assist_turn(&id, turn)).await;
            assert_eq!(response.status(), 200);
            served.push(served_by(&response));
            response.bytes().await.unwrap();
        }
    }
    let mut homes: HashMap<String, usize> = HashMap::new();
    let mut moves = 0;
    for served in &per_session {
        moves += served.windows(2).filter(|w| w[0] != w[1]).count();
        *homes.entry(served[0].clone()).or_default() += 1;
    }
    let requests: usize = per_session.iter().map(Vec::len).sum();
    println!(
        "gemini affinity: {SESSIONS} sessions x {TURNS} turns ({requests} requests incl. routing calls) \
         on {ACCOUNTS} accounts: {moves} moves; sessions per account {homes:?}"
    );
    assert_eq!(moves, 0, "{per_session:?}");
    pools.stop().await;
}
