//! Shared by the tests that run the real `sluice` binary against the fake Anthropic API (and
//! its OAuth side) running in the test process, with a real database in a temporary data
//! directory.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_fake::{FakeAnthropic, FakeConfig};
use sluice_store::SqliteStore;

pub fn sluice() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
    command
        .env_remove("SLUICE_CONFIG")
        .env_remove("SLUICE_LISTEN")
        .env_remove("SLUICE_DATA_DIR")
        .env_remove("RUST_LOG")
        .env_remove("BROWSER")
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY");
    command
}

/// A fake upstream running on its own runtime for the length of a test.
pub struct Fake {
    pub fake: Arc<FakeAnthropic>,
    pub runtime: tokio::runtime::Runtime,
}

impl Fake {
    pub fn start() -> Fake {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let fake = {
            let _inside = runtime.enter();
            Arc::new(FakeAnthropic::start(FakeConfig::default()).unwrap())
        };
        Fake { fake, runtime }
    }

    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

/// A data directory and a config file whose every provider URL is the fake's.
pub struct Setup {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Setup {
    pub fn new(fake: &FakeAnthropic, extra: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let config = dir.path().join("config.toml");
        let base = fake.base_url();
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{extra}\n\
                 [providers.anthropic]\nbase_url = \"{base}\"\ntoken_url = \"{base}/v1/oauth/token\"\n\
                 usage_url = \"{base}/api/oauth/usage\"\nprofile_url = \"{base}/api/oauth/profile\"\n\
                 authorize_url = \"{base}/oauth/authorize\"\nmanual_redirect_url = \"{base}/oauth/code/callback\"\n\
                 [oauth]\nusage_probe_interval = \"0s\"\n",
                data.display()
            ),
        )
        .unwrap();
        Setup { dir, config }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn store(&self) -> SqliteStore {
        SqliteStore::open(&self.data_dir()).unwrap()
    }

    pub fn run(&self, args: &[&str]) -> (bool, String, String) {
        self.run_with_stdin(args, "")
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> (bool, String, String) {
        let mut child = sluice()
            .args(args)
            .arg("--config")
            .arg(&self.config)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    pub fn list_json(&self) -> Vec<serde_json::Value> {
        let (ok, stdout, stderr) = self.run(&["accounts", "--json"]);
        assert!(ok, "{stderr}");
        serde_json::from_str(&stdout).unwrap()
    }
}

pub struct Running {
    pub child: Child,
    pub url: String,
    pub log: Arc<parking_lot::Mutex<String>>,
}

impl Running {
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Start `sluice serve` and wait for the address it announces.
pub fn serve(setup: &Setup) -> Running {
    let mut child = sluice()
        .args(["serve", "--config"])
        .arg(&setup.config)
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(parking_lot::Mutex::new(String::new()));
    let (sender, receiver) = std::sync::mpsc::channel();
    {
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("sluice listening on http://") {
                    let addr: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
                    let _ = sender.send(format!("http://{addr}"));
                }
                let mut log = log.lock();
                log.push_str(&line);
                log.push('\n');
            }
        });
    }
    let url = receiver
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("sluice did not start: {}", log.lock()));
    Running { child, url, log }
}

pub fn client() -> reqwest::Client {
    sluice_server::upstream::install_crypto_provider();
    reqwest::Client::new()
}

pub async fn post(url: &str, stream: bool) -> (u16, String, String) {
    let response = client()
        .post(format!("{url}/v1/messages"))
        .header("content-type", "application/json")
        .body(format!(
            r#"{{"model":"claude-sonnet-4-5","max_tokens":64,"stream":{stream},"messages":[{{"role":"user","content":"hi"}}]}}"#
        ))
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
}

pub async fn status(url: &str) -> serde_json::Value {
    client()
        .get(format!("{url}/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub async fn wait_for_status(url: &str, what: &str, pred: impl Fn(&serde_json::Value) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = status(url).await;
        if pred(&status) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {status:#}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn account<'a>(status: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    status["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == name)
}

/// What `sluice login` did: whether it succeeded, its stdout and stderr, and the login URL it
/// printed.
pub struct LoginRun {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
    pub url: String,
}

/// Drive `sluice login ARGS`, playing the user. With `browser`, a "browser" that does nothing
/// is configured and the test opens the login URL itself: the fake approves at once and
/// redirects to sluice's localhost listener. Without, the test reads the code the fake's page
/// shows and pastes it at the prompt.
pub fn login(setup: &Setup, fake: &Fake, args: &[&str], browser: bool) -> LoginRun {
    let mut command = sluice();
    command
        .arg("login")
        .args(args)
        .arg("--config")
        .arg(&setup.config)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if browser {
        command.env("BROWSER", "true");
    }
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let url = loop {
        let mut line = String::new();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "no URL: {seen}");
        seen.push_str(&line);
        if let Some(at) = line.find("http") {
            break line[at..].trim().to_owned();
        }
    };
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    fake.block_on(async {
        let page = client().get(&url).send().await.unwrap();
        let status = page.status();
        let text = page.text().await.unwrap();
        if browser {
            assert_eq!(status, 200, "{text}");
        } else {
            stdin.write_all(format!("{text}\n").as_bytes()).unwrap();
        }
    });
    drop(stdin);
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    stderr.read_to_string(&mut seen).unwrap();
    let ok = child.wait().unwrap().success();
    LoginRun {
        ok,
        stdout,
        stderr: seen,
        url,
    }
}
