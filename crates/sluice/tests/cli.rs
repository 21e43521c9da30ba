//! The `sluice` binary as a user runs it.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn sluice() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .env_remove("SLUICE_CONFIG")
        .env_remove("SLUICE_LISTEN")
        .env_remove("RUST_LOG");
    command
}

fn write_config(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn config_check_names_the_file_key_and_line_of_a_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "listen = \"127.0.0.1:8787\"\n\n[[accounts]]\nname = \"a\"\napi_key = \"sk-1\"\n\n[[accounts]]\nname = \"b\"\napi_key = \"sk-2\"\nweight = 0\n",
    );
    let out = sluice()
        .args(["config", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:10:", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("accounts[1].weight"), "{stderr}");

    let path = write_config(&dir, "listen = \"127.0.0.1:8787\"\nlisten_port = 4\n");
    let out = sluice()
        .args(["config", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(":2:"), "{stderr}");
    assert!(stderr.contains("listen_port"), "{stderr}");
}

#[test]
fn config_check_prints_the_effective_config_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        "client_keys = [\"sk-sluice-VERYSECRET\"]\n[[accounts]]\nname = \"work\"\naccess_token = \"sk-ant-oat01-TOPSECRET\"\nrefresh_token = \"sk-ant-ort01-HIDDEN\"\n",
    );
    let out = sluice()
        .args(["config", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("name = \"work\""), "{stdout}");
    assert!(
        stdout.contains("switch_threshold"),
        "defaults are filled in: {stdout}"
    );
    for secret in ["VERYSECRET", "TOPSECRET", "HIDDEN"] {
        assert!(!stdout.contains(secret), "{secret} printed: {stdout}");
    }
    assert!(stdout.contains("****"));
}

#[test]
fn serve_refuses_a_public_address_without_client_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(&dir, "");
    let out = sluice()
        .args(["serve", "--listen", "0.0.0.0:0", "--config"])
        .arg(&path)
        // Its own data directory: the user's (another sluice's) must not decide the outcome.
        .env("SLUICE_DATA_DIR", dir.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("client_keys"));
    // Refused before anything was opened: no store, no lock file.
    assert!(!dir.path().join("data").exists());
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start a long-running subcommand and wait for the `http://ADDR` it announces on stderr.
fn start(args: &[&str]) -> (Running, String) {
    let mut running = Running(
        sluice()
            .args(args)
            .env("RUST_LOG", "warn")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let stderr = running.0.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = String::new();
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        seen.push_str(&line);
        seen.push('\n');
        if let Some(at) = line.find("http://") {
            let addr: String = line[at + 7..]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect();
            std::thread::spawn(move || for _ in lines {});
            return (running, format!("http://{addr}"));
        }
    }
    panic!("no address announced; stderr so far:\n{seen}");
}

fn get(url: &str) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        sluice_server::upstream::install_crypto_provider();
        let response = reqwest::get(url).await.unwrap();
        let status = response.status().as_u16();
        (status, response.text().await.unwrap())
    })
}

fn post_stream(url: &str) -> (u16, String, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        sluice_server::upstream::install_crypto_provider();
        let response = reqwest::Client::new()
            .post(format!("{url}/v1/messages"))
            .header("content-type", "application/json")
            .body(r#"{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let account = response
            .headers()
            .get("x-sluice-account")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (status, account, response.text().await.unwrap())
    })
}

#[test]
fn demo_serves_a_live_pool_without_credentials() {
    let (_demo, url) = start(&[
        "demo",
        "--listen",
        "127.0.0.1:0",
        "--accounts",
        "3",
        "--traffic",
        "0",
        "--report-every",
        "0",
    ]);
    let (status, account, body) = post_stream(&url);
    assert_eq!(status, 200);
    assert!(account.starts_with("demo-"), "served by {account}");
    assert!(body.contains("event: message_stop"), "{body}");
    let (status, json) = get(&format!("{url}/status"));
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json["totals"]["accounts"], 3);
    assert_eq!(json["totals"]["completed"], 1);
    assert!(json["accounts"][0]["quota"].is_object());
}

#[cfg(unix)]
#[test]
fn serve_drains_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        &dir,
        &format!(
            "data_dir = \"{}\"\n[[accounts]]\nname = \"a\"\napi_key = \"sk-ant-api03-x\"\nupstream = \"http://127.0.0.1:9\"\n",
            dir.path().join("data").display()
        ),
    );
    let (mut running, url) = start(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        path.to_str().unwrap(),
    ]);
    let (status, _) = get(&format!("{url}/healthz"));
    assert_eq!(status, 200);
    let pid = running.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(code) = running.0.try_wait().unwrap() {
            assert!(code.success(), "exit status {code}");
            break;
        }
        assert!(Instant::now() < deadline, "did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn usage_reports_the_request_log_with_estimated_costs() {
    use sluice_store::{RequestLogRow, SqliteStore, Store};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let path = write_config(
        &dir,
        &format!(
            "data_dir = {:?}\n[prices.test-model]\ninput = 1.0\noutput = 10.0\n",
            data.display().to_string()
        ),
    );
    // Nothing logged yet: a clear sentence, not an error.
    let out = sluice()
        .args(["usage", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("No requests"));

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let row = |account: &str, model: &str, age_ms: i64, input: u64, output: u64| RequestLogRow {
        at_ms: now - age_ms,
        provider: "anthropic".into(),
        account: Some(account.into()),
        model: Some(model.into()),
        method: "POST".into(),
        path: "/v1/messages".into(),
        status: 200,
        attempts: 1,
        latency_ms: 100.0,
        input_tokens: input,
        output_tokens: output,
        ..RequestLogRow::default()
    };
    {
        std::fs::create_dir_all(&data).unwrap();
        let store = SqliteStore::open(&data).unwrap();
        store
            .log_requests(&[
                row("work", "test-model-1", 60_000, 1_000_000, 100_000),
                row("home", "test-model-1", 120_000, 500_000, 0),
                row("home", "mystery-model", 180_000, 10, 10),
                // Two days old: outside --since 24h.
                row("work", "test-model-1", 2 * 86_400_000, 9_000_000, 0),
            ])
            .unwrap();
    }

    let out = sluice()
        .args([
            "usage", "--by", "account", "--json", "--since", "24h", "--config",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = report["rows"].as_array().unwrap();
    let of = |name: &str| rows.iter().find(|r| r["key"] == name).unwrap().clone();
    let work = of("work");
    assert_eq!(work["requests"], 1);
    assert_eq!(work["input_tokens"], 1_000_000);
    // 1M input at $1/M plus 100k output at $10/M.
    assert!(
        (work["cost_usd"].as_f64().unwrap() - 2.0).abs() < 1e-9,
        "{work}"
    );
    let home = of("home");
    assert_eq!(home["requests"], 2);
    assert_eq!(home["unpriced_requests"], 1);
    assert!(
        (home["cost_usd"].as_f64().unwrap() - 0.5).abs() < 1e-9,
        "{home}"
    );
    assert_eq!(report["total"]["requests"], 3);

    let out = sluice()
        .args(["usage", "--by", "model", "--since", "7d", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("test-model-1"), "{table}");
    assert!(table.contains("mystery-model"), "{table}");
    assert!(table.contains("$11.50"), "{table}");
    assert!(table.contains("without a price"), "{table}");

    let out = sluice()
        .args(["usage", "--since", "soon", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("soon"));
}
