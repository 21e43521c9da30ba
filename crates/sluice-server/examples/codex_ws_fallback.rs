//! Measures what the Codex CLI's WebSocket attempt costs through sluice, against a server
//! that ignores the upgrade: a client opening turns the way the CLI does
//! ([`sluice_fake::CodexTransport`], with the CLI's real backoff) against sluice, which
//! answers the attempt `426 Upgrade Required`, and against [`sluice_fake::UpgradeIgnorer`],
//! which answers it `404` like the server the CLI was captured against.
//!
//! ```sh
//! cargo run -p sluice-server --example codex_ws_fallback [RUNS]
//! ```

use std::time::{Duration, Instant};

use sluice_config::{AccountConfig, AccountOptions, Config, Credential, ProviderKind};
use sluice_fake::{ApiReply, CodexTransport, FakeCodex, UpgradeIgnorer};
use sluice_server::AppState;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    sluice_server::upstream::install_crypto_provider();
    let fake = FakeCodex::new()?;
    fake.add_account("acct-a", "at-a");
    fake.set_default("acct-a", ApiReply::ok().text(["po", "ng"]));
    let mut config = Config {
        listen: "127.0.0.1:0".parse()?,
        ..Config::default()
    };
    config.providers.codex.base_url = fake.base_url().parse()?;
    config.accounts.push(AccountConfig {
        name: "a".into(),
        provider: ProviderKind::Codex,
        credential: Credential::OAuth {
            access_token: "at-a".to_owned().into(),
            refresh_token: None,
            expires_at_ms: None,
        },
        upstream: None,
        priority: 0,
        weight: 1,
        enabled: true,
        options: AccountOptions {
            account_id: Some("acct-a".into()),
            ..AccountOptions::default()
        },
    });
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let sluice = listener.local_addr()?;
    let state = AppState::new(config)?;
    tokio::spawn(sluice_server::serve(
        listener,
        state,
        std::future::pending(),
    ));
    let ignorer = UpgradeIgnorer::start().await?;
    let cli = CodexTransport::default();
    let client = reqwest::Client::new();
    let body = serde_json::json!({"model": "gpt-5", "stream": true, "input": "say pong", "prompt_cache_key": "measure"});

    println!(
        "Codex CLI turn openings (WebSocket attempt, then POST), {runs} runs, backoff {:?} doubling, {} retries:",
        cli.initial_backoff, cli.max_retries
    );
    for (name, addr, post) in [
        ("sluice (426)", sluice, true),
        ("ignoring server (404)", ignorer.addr(), false),
    ] {
        let mut fallbacks = Vec::new();
        let mut first_events = Vec::new();
        let mut handshakes = 0;
        for _ in 0..runs {
            let started = Instant::now();
            let opening = cli.open_turn(addr).await;
            handshakes = opening.handshakes.len();
            fallbacks.push(opening.fallback_after);
            if post {
                let mut response = client
                    .post(format!("http://{sluice}/v1/responses"))
                    .header("originator", "codex_exec")
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await?;
                response.chunk().await?;
                first_events.push(started.elapsed());
                while response.chunk().await?.is_some() {}
            }
        }
        fallbacks.sort();
        let median = fallbacks[fallbacks.len() / 2];
        print!(
            "  {name:<24} {handshakes} handshake(s), fallback after median {} (min {}, max {})",
            ms(median),
            ms(fallbacks[0]),
            ms(*fallbacks.last().unwrap())
        );
        if !first_events.is_empty() {
            first_events.sort();
            print!(
                "; first event of the turn after median {}",
                ms(first_events[first_events.len() / 2])
            );
        }
        println!();
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
