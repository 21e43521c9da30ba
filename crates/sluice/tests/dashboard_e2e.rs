//! The web dashboard end to end: a real `sluice demo` (simulated accounts, live traffic) and
//! Debian's headless Chromium driven over the DevTools protocol. The accounts render, a live
//! value changes, clicking "disable" (and confirming) disables an account in sluice itself,
//! switching the routing strategy from the page switches it, and a screenshot is saved as
//! `test-artifacts/dashboard.png`.
//!
//! Chromium comes from the project's own test script (`.ci/run` installs the `chromium`
//! package when `/usr/bin/chromium` is missing); this test never downloads anything. Without
//! Chromium it says so and is skipped. `SLUICE_CHROMIUM` points at another binary.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Long enough for a loaded two-core machine; these are deadlines, not measurements.
const PATIENCE: Duration = Duration::from_secs(30);

/// A child stopped when dropped (also while unwinding a panic): asked with SIGTERM first, so
/// `sluice demo` removes its temporary store, and killed if it has not gone within a few
/// seconds.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        use rustix::process::{Pid, Signal, kill_process};
        let asked = i32::try_from(self.0.id())
            .ok()
            .and_then(Pid::from_raw)
            .is_some_and(|pid| kill_process(pid, Signal::TERM).is_ok());
        if asked {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn chromium() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("SLUICE_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Read `child`'s stderr until a line contains `marker`; return the text after it.
fn wait_for_line(child: &mut Child, marker: &str, what: &str) -> String {
    let stderr = child.stderr.take().expect("stderr is piped");
    let mut lines = BufReader::new(stderr).lines();
    let deadline = Instant::now() + PATIENCE;
    let mut seen = String::new();
    while Instant::now() < deadline {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(at) = line.find(marker) {
            let rest: String = line[at + marker.len()..]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect();
            // Keep draining so the child never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            return rest;
        }
        seen.push_str(&line);
        seen.push('\n');
    }
    panic!("{what} never announced {marker:?}; its stderr:\n{seen}");
}

/// A DevTools connection with one page attached (flattened session).
struct DevTools {
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    next_id: u64,
    session: Option<String>,
}

impl DevTools {
    async fn connect(url: &str) -> DevTools {
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("DevTools accepts the connection");
        DevTools {
            socket,
            next_id: 1,
            session: None,
        }
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(session) = &self.session {
            message["sessionId"] = json!(session);
        }
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .expect("DevTools takes the command");
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let next = tokio::time::timeout_at(deadline, self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method}"));
            let Some(Ok(Message::Text(text))) = next else {
                continue;
            };
            let answer: Value = serde_json::from_str(&text).expect("DevTools speaks JSON");
            if answer["id"] != json!(id) {
                continue; // an event
            }
            if let Some(error) = answer.get("error") {
                panic!("{method} failed: {error}");
            }
            return answer["result"].clone();
        }
    }

    /// Evaluate `expression` in the page and return its value.
    async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("{expression} threw: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Poll `expression` until it is truthy; returns its value.
    async fn wait_for(&mut self, expression: &str, what: &str) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let value = self.eval(expression).await;
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Click the element `selector` matches with the mouse, as a user would.
    async fn click(&mut self, selector: &str) {
        let quoted = serde_json::to_string(selector).unwrap();
        let center = self
            .wait_for(
                &format!(
                    "(() => {{ const e = document.querySelector({quoted}); if (!e) return null;
                       e.scrollIntoView({{block: 'center'}}); const r = e.getBoundingClientRect();
                       return [r.left + r.width / 2, r.top + r.height / 2]; }})()"
                ),
                selector,
            )
            .await;
        let (x, y) = (center[0].as_f64().unwrap(), center[1].as_f64().unwrap());
        for kind in ["mousePressed", "mouseReleased"] {
            self.call(
                "Input.dispatchMouseEvent",
                json!({"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}),
            )
            .await;
        }
    }
}

async fn status_of(url: &str, account: &str) -> String {
    let status: Value = reqwest::get(format!("{url}/status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    status["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == account)
        .map(|a| a["state"].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

fn artifact(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_pool_live_and_its_buttons_work() {
    let Some(browser) = chromium() else {
        eprintln!(
            "SKIPPED the dashboard's end-to-end test: Chromium is not installed \
             (.ci/run installs Debian's `chromium` package; or set SLUICE_CHROMIUM)"
        );
        return;
    };
    sluice_server::upstream::install_crypto_provider();

    let mut demo = Killed(
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args([
                "demo",
                "--listen",
                "127.0.0.1:0",
                "--accounts",
                "3",
                "--traffic",
                "6",
                "--report-every",
                "0",
                "--no-tui",
            ])
            .env_remove("RUST_LOG")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sluice demo starts"),
    );
    let url = format!(
        "http://{}",
        wait_for_line(&mut demo.0, "behind http://", "sluice demo")
    );

    let profile = tempfile::tempdir().unwrap();
    let mut chrome = Killed(
        Command::new(&browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
                "--window-size=1400,1000",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", browser.display())),
    );
    let devtools = format!(
        "ws://{}",
        wait_for_line(&mut chrome.0, "DevTools listening on ws://", "Chromium")
    );

    let mut page = DevTools::connect(&devtools).await;
    let target = page
        .call("Target.createTarget", json!({"url": "about:blank"}))
        .await;
    let session = page
        .call(
            "Target.attachToTarget",
            json!({"targetId": target["targetId"], "flatten": true}),
        )
        .await;
    page.session = Some(session["sessionId"].as_str().unwrap().to_owned());
    page.call("Page.enable", json!({})).await;
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1400, "height": 1000, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await;
    page.call("Page.navigate", json!({"url": format!("{url}/dashboard")}))
        .await;

    // The accounts render.
    page.wait_for(
        "document.querySelectorAll('#accounts tbody tr').length === 3",
        "three account rows",
    )
    .await;
    let names = page
        .eval("[...document.querySelectorAll('#accounts tbody tr')].map(r => r.dataset.account)")
        .await;
    assert_eq!(
        names,
        json!(["demo-max20-1", "demo-pro-2", "demo-max5-3"]),
        "the page lists the demo's accounts"
    );

    // A live value changes without reloading the page.
    let served = page
        .wait_for(
            "document.getElementById('completed').textContent.replace('–', '')",
            "the served count",
        )
        .await;
    page.wait_for(
        &format!(
            "document.getElementById('completed').textContent !== {}",
            serde_json::to_string(&served).unwrap()
        ),
        "the served count to move",
    )
    .await;

    // An admin action: disable an account, confirming first.
    let row = "#accounts tr[data-account=\"demo-pro-2\"]";
    page.click(&format!("{row} button[data-action=\"disable\"]"))
        .await;
    assert_eq!(
        status_of(&url, "demo-pro-2").await,
        "available",
        "nothing changes before the confirmation"
    );
    page.click(&format!("{row} button[data-confirm=\"yes\"]"))
        .await;
    page.wait_for(
        &format!("document.querySelector('{row}').dataset.state === 'disabled'"),
        "the row to show the account disabled",
    )
    .await;
    assert_eq!(status_of(&url, "demo-pro-2").await, "disabled");

    // Switching the routing strategy from the page switches sluice's.
    page.eval(
        "(() => { const s = document.getElementById('strategy'); s.value = 'round-robin'; return s.value; })()",
    )
    .await;
    page.click("#strategy-apply").await;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let scheduler: Value = reqwest::get(format!("{url}/api/scheduler"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if scheduler["strategy"] == "round-robin" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the strategy never switched: {scheduler}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Let the charts and the request list fill in, then keep a picture.
    page.wait_for(
        "document.querySelectorAll('#chart-requests rect').length > 0 && document.querySelectorAll('#requests tbody tr').length > 0",
        "the charts and recent requests",
    )
    .await;
    let shot = page
        .call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true}),
        )
        .await;
    let png = base64::engine::general_purpose::STANDARD
        .decode(shot["data"].as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG came back");
    let path = artifact("dashboard.png");
    std::fs::write(&path, &png).unwrap();
    eprintln!("screenshot: {}", path.display());
}
