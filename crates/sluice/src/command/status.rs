//! `sluice status`: ask a running sluice for its pool and print it as a table (or JSON).

use std::process::ExitCode;

use anyhow::Context;
use serde_json::Value;

use super::ConfigArg;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// Base URL of the running sluice (default: from the config's `listen`).
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// Print the raw JSON.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = sluice_config::load(args.config.config.as_deref())?;
    let base = args
        .url
        .unwrap_or_else(|| format!("http://{}", config.listen));
    sluice_server::upstream::install_crypto_provider();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let body: Value = runtime.block_on(async {
        let mut request =
            reqwest::Client::new().get(format!("{}/status", base.trim_end_matches('/')));
        if let Some(key) = config.client_keys.first() {
            request = request.header("x-api-key", key.expose());
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("could not reach sluice at {base} (is it running?)"))?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .context("sluice answered something that is not JSON")?;
        anyhow::ensure!(status.is_success(), "sluice answered HTTP {status}: {body}");
        Ok::<_, anyhow::Error>(body)
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        print!("{}", render(&body));
    }
    Ok(ExitCode::SUCCESS)
}

/// A fixed-width table of the accounts in a `/status` document.
pub fn render(status: &Value) -> String {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    };
    let mut out = String::new();
    let totals = &status["totals"];
    out.push_str(&format!(
        "sluice {} on {} · strategy {} · {} of {} accounts available · {} in flight · {} ok / {} failed\n",
        text(&status["version"]),
        text(&status["listen"]),
        text(&status["strategy"]),
        text(&totals["available"]),
        text(&totals["accounts"]),
        text(&totals["in_flight"]),
        text(&totals["completed"]),
        text(&totals["failed"]),
    ));
    let pools: Vec<String> = status["pools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["accounts"].as_u64().unwrap_or(0) > 0)
        .map(|p| {
            format!(
                "{} {}/{} available, {} queued",
                text(&p["provider"]),
                text(&p["available"]),
                text(&p["accounts"]),
                p["scheduler"]["queued"].as_u64().unwrap_or(0)
            )
        })
        .collect();
    if !pools.is_empty() {
        out.push_str(&format!("pools: {}\n", pools.join(" · ")));
    }
    out.push_str(&format!(
        "{:<18} {:<10} {:<8} {:<6} {:<16} {:>5} {:>7} {:>6} {:>5} {:>5} {:>9}  {}\n",
        "ACCOUNT",
        "PROVIDER",
        "KIND",
        "PLAN",
        "STATE",
        "INFL",
        "OK",
        "FAIL",
        "5H",
        "7D",
        "TOKEN",
        "LAST ERROR"
    ));
    let now = super::local::now_ms();
    for account in status["accounts"].as_array().into_iter().flatten() {
        let credential = &account["credential"];
        let state = if account["leaving"] == true {
            "leaving".to_owned()
        } else {
            text(&account["state"])
        };
        out.push_str(&format!(
            "{:<18} {:<10} {:<8} {:<6} {:<16} {:>5} {:>7} {:>6} {:>5} {:>5} {:>9}  {}\n",
            text(&account["name"]),
            provider_column(account["provider"].as_str().unwrap_or("-")),
            text(&account["kind"]),
            credential["plan"].as_str().unwrap_or("-"),
            state,
            text(&account["in_flight"]),
            text(&account["completed"]),
            text(&account["failed"]),
            short_window_use(&account["quota"]),
            percent(account["quota"]["weekly"]["utilization"].as_f64()),
            token_expiry(credential, now),
            account["last_error"].as_str().unwrap_or(""),
        ));
    }
    out
}

/// A provider's name for a table column: third parties (`anthropic-compatible`) are
/// `compatible`, which fits.
pub fn provider_column(provider: &str) -> &str {
    match provider {
        "anthropic-compatible" => "compatible",
        other => other,
    }
}

/// How long a subscription's access token has left ("47m", "expired"); "-" for keys.
fn token_expiry(credential: &Value, now: i64) -> String {
    let Some(expires_at) = credential["expires_at"].as_i64() else {
        return "-".to_owned();
    };
    let left = (expires_at - now) / 1000;
    if left <= 0 {
        "expired".to_owned()
    } else if left >= 3600 {
        format!("{}h{:02}m", left / 3600, left % 3600 / 60)
    } else {
        format!("{}m", left / 60)
    }
}

/// The 5-hour window's use, or for API-key accounts the fullest rate-limit bucket.
fn short_window_use(quota: &Value) -> String {
    if let Some(u) = quota["session"]["utilization"].as_f64() {
        return percent(Some(u));
    }
    let used = ["requests", "tokens", "input_tokens", "output_tokens"]
        .iter()
        .filter_map(|bucket| {
            let limit = quota[bucket]["limit"].as_f64()?;
            let remaining = quota[bucket]["remaining"].as_f64()?;
            (limit > 0.0).then(|| 1.0 - remaining / limit)
        })
        .reduce(f64::max);
    percent(used)
}

fn percent(fraction: Option<f64>) -> String {
    fraction.map_or_else(|| "-".to_owned(), |u| format!("{:.0}%", u * 100.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_each_accounts_provider_and_each_pool_in_use() {
        let status = serde_json::json!({
            "version": "0.1.0",
            "listen": "127.0.0.1:8787",
            "strategy": "adaptive",
            "totals": {"available": 2, "accounts": 3, "in_flight": 0, "completed": 5, "failed": 0},
            "pools": [
                {"provider": "anthropic", "accounts": 2, "available": 1, "scheduler": {"queued": 0}},
                {"provider": "codex", "accounts": 1, "available": 1, "scheduler": {"queued": 2}},
                {"provider": "openai", "accounts": 0, "available": 0, "scheduler": {"queued": 0}},
            ],
            "accounts": [
                {"name": "max", "provider": "anthropic", "kind": "oauth", "state": "ready", "credential": {}},
                {"name": "glm", "provider": "anthropic-compatible", "kind": "api_key", "state": "ready", "credential": {}},
                {"name": "chatgpt", "provider": "codex", "kind": "oauth", "state": "ready", "credential": {}},
            ],
        });
        let text = render(&status);
        assert!(
            text.contains(
                "pools: anthropic 1/2 available, 0 queued · codex 1/1 available, 2 queued\n"
            ),
            "{text}"
        );
        assert!(!text.contains("openai"), "empty pools are left out: {text}");
        let row = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name))
                .unwrap_or_else(|| panic!("no row for {name}: {text}"))
                .to_owned()
        };
        assert!(row("chatgpt").contains(" codex "), "{text}");
        assert!(row("glm").contains(" compatible "), "{text}");
    }
}
