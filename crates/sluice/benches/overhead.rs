//! What sluice costs a request, measured against a direct connection to the same upstream.
//!
//! One run starts a fake Anthropic upstream ([`sluice_fake::FakeAnthropic`]) on a tokio runtime
//! of its own, spawns the real `sluice serve` binary as a child process in front of it (logging
//! at `info` to /dev/null, as in production, so logging is part of the cost), and drives both
//! targets — the upstream directly, and the upstream through sluice — with the same HTTP client
//! (reqwest, HTTP/1.1 keep-alive, `TCP_NODELAY`) from a current-thread runtime. Phases of the
//! targets alternate (A B, B A, …) so that drift on the machine hits all of them alike.
//!
//! Measured, and why:
//! - **Non-streaming latency** (`POST /v1/messages`, tiny JSON reply) at concurrency 1 and 64:
//!   per-request percentiles and requests/s for each target, and the latency sluice *adds*
//!   (same percentile via sluice minus direct). The upstream answers at once, so the difference
//!   is sluice's own cost. A third, reference target is a byte-for-byte TCP relay (tokio
//!   `copy_bidirectional`) in front of the same upstream: the floor any proxy hop pays on this
//!   machine. CPU time per request (from `/proc/<pid>/task/*/schedstat`) of sluice, the relay
//!   and the upstream shows where the time goes.
//! - **Streaming** (SSE, 20 deltas paced 5 ms apart by the upstream): time to the first complete
//!   event, one stream at a time, and each event's arrival relative to the first. A proxy that
//!   forwards events the moment they are complete shifts every event by the same constant hop,
//!   which cancels out of `arrival_i − arrival_0`; buffering or batching does not. The per-event
//!   delay is that offset via sluice minus the same offset of a direct stream. The upstream's
//!   own pacing jitters by about a millisecond per event (tokio's timer granularity), so for
//!   sensitivity the paired scenario starts a sluice stream and two direct streams together:
//!   their upstream timers mostly fire on the same ticks, so that jitter is common to all three
//!   and cancels, and the direct-vs-direct pair measures what remains (mostly one-tick slips).
//!   A run with 500 streams in flight per target reports the same under load, and the CPU each
//!   stream cost sluice and the upstream.
//! - **Memory**: sluice's VmRSS/VmHWM at idle and after the runs.
//!
//! Run with `cargo bench -p sluice --bench overhead`; `SLUICE_BENCH_SCALE` (default 1.0)
//! multiplies request and stream counts (concurrency levels stay fixed), so
//! `SLUICE_BENCH_SCALE=0.05` is a smoke test. The report is markdown on stdout; targets are
//! reported with a PASS/MISS note, never asserted.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sluice_fake::{FakeAnthropic, FakeConfig, Reply};
use tokio::task::JoinSet;

/// API-key accounts of the pool (and of the fake upstream).
const ACCOUNTS: &[&str] = &[
    "sk-ant-bench-0000",
    "sk-ant-bench-0001",
    "sk-ant-bench-0002",
    "sk-ant-bench-0003",
];
/// What the client sends as its own key through sluice (no `client_keys`: any is admitted).
const CLIENT_KEY: &str = "sk-ant-bench-client";
const MODEL: &str = "claude-sonnet-4-5";
const BODY: &str = r#"{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"ping"}]}"#;
const STREAM_BODY: &str = r#"{"model":"claude-sonnet-4-5","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"ping"}]}"#;

/// Upstream pacing of the streaming part.
const DELTAS: usize = 20;
const EVENT_DELAY: Duration = Duration::from_millis(5);

/// Counts at scale 1.0.
const SEQUENTIAL_REQUESTS: usize = 2_000;
const CONCURRENT_REQUESTS: usize = 20_000;
const CONCURRENCY: usize = 64;
const SEQUENTIAL_STREAMS: usize = 200;
const PAIRED_STREAMS: usize = 200;
const CONCURRENT_STREAMS: usize = 500;
const CONCURRENT_STREAM_ROUNDS: usize = 4;
/// Slices of each non-streaming measurement; a multiple of 6 so that every order of the three
/// targets comes up equally often.
const ROUNDS: usize = 12;

/// Targets of the issue.
const TARGET_ADDED_P99_C1_US: f64 = 200.0;
const TARGET_ADDED_P99_C64_US: f64 = 1_000.0;
/// A per-event delay below this counts as none (1% of the upstream's 5 ms event spacing).
const PER_EVENT_TOLERANCE_US: f64 = 50.0;

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` does not: stay out of tests.
    if !std::env::args().any(|a| a == "--bench") {
        println!("overhead: skipped (run it with `cargo bench -p sluice --bench overhead`)");
        return;
    }
    let began = Instant::now();
    let scale = Scale::from_env();
    let upstream = setup::Upstream::start();
    let relay = setup::Relay::start(upstream.fake.addr());
    let mut sluice = setup::Sluice::spawn(&upstream.fake.base_url());
    let client_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    let results = client_runtime.block_on(scenario::run(&scale, &upstream, &relay, &mut sluice));
    drop(sluice);
    drop(relay);
    drop(upstream);
    print!("{}", report::render(&scale, &results, began.elapsed()));
}

/// How much of each count to run (`SLUICE_BENCH_SCALE`).
pub struct Scale {
    factor: f64,
    raw: Option<String>,
}

impl Scale {
    fn from_env() -> Scale {
        let raw = std::env::var("SLUICE_BENCH_SCALE").ok();
        let factor = match raw.as_deref().map(str::parse::<f64>) {
            None => 1.0,
            Some(Ok(f)) if f.is_finite() && f > 0.0 => f,
            Some(_) => panic!("SLUICE_BENCH_SCALE must be a positive number, got {raw:?}"),
        };
        Scale { factor, raw }
    }

    /// `count` scaled, but never below `min`.
    fn of(&self, count: usize, min: usize) -> usize {
        ((count as f64 * self.factor).round() as usize).max(min)
    }
}

/// The fake upstream, the reference relay and the sluice child process.
mod setup {
    use super::*;

    /// The fake Anthropic upstream on a one-worker runtime of its own, so that it never shares
    /// a scheduler with the load client.
    pub struct Upstream {
        // Dropped before the runtime: shutting the fake down aborts its tasks there.
        pub fake: FakeAnthropic,
        _runtime: tokio::runtime::Runtime,
    }

    /// Thread name of the upstream's worker, to find its CPU time.
    pub const UPSTREAM_THREAD: &str = "fake-upstream";
    /// Thread name of the relay's worker.
    pub const RELAY_THREAD: &str = "bench-relay";

    impl Upstream {
        pub fn start() -> Upstream {
            let runtime = one_worker_runtime(UPSTREAM_THREAD);
            // The request log is test machinery; keep its cost out of every target.
            let config = FakeConfig {
                max_recorded_requests: 0,
                ..FakeConfig::default()
            };
            let fake = {
                let _enter = runtime.enter();
                FakeAnthropic::start(config).expect("fake upstream starts")
            };
            for key in ACCOUNTS {
                fake.add_account(key);
            }
            Upstream {
                fake,
                _runtime: runtime,
            }
        }

        /// Answer every account with `reply` from now on.
        pub fn reply_with(&self, reply: &Reply) {
            for key in ACCOUNTS {
                self.fake.set_default(key, reply.clone());
            }
        }
    }

    /// A do-nothing TCP relay to the upstream on a one-worker runtime of its own: what one
    /// extra hop costs without any HTTP, routing or logging.
    pub struct Relay {
        pub addr: SocketAddr,
        _runtime: tokio::runtime::Runtime,
    }

    impl Relay {
        pub fn start(upstream: SocketAddr) -> Relay {
            let runtime = one_worker_runtime(RELAY_THREAD);
            let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind relay");
            listener.set_nonblocking(true).expect("nonblocking relay");
            let addr = listener.local_addr().expect("relay addr");
            runtime.spawn(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("relay listener");
                while let Ok((mut inbound, _)) = listener.accept().await {
                    tokio::spawn(async move {
                        let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await
                        else {
                            return;
                        };
                        let _ = inbound.set_nodelay(true);
                        let _ = outbound.set_nodelay(true);
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    });
                }
            });
            Relay {
                addr,
                _runtime: runtime,
            }
        }
    }

    fn one_worker_runtime(name: &str) -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(name)
            .enable_all()
            .build()
            .expect("runtime")
    }

    /// The real `sluice serve` binary; killed when dropped (also while unwinding a panic).
    pub struct Sluice {
        child: Child,
        pub addr: SocketAddr,
        _dir: tempfile::TempDir,
    }

    impl Sluice {
        pub fn spawn(upstream: &str) -> Sluice {
            let dir = tempfile::tempdir().expect("temp dir");
            let config = dir.path().join("sluice.toml");
            std::fs::write(&config, config_toml(upstream, &dir.path().join("data")))
                .expect("write config");
            // sluice prints its address only to stderr: pick a free port for it instead.
            let addr = free_port();
            let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
                .arg("serve")
                .arg("--config")
                .arg(&config)
                .arg("--listen")
                .arg(addr.to_string())
                .env("SLUICE_LOG", "info")
                .env_remove("RUST_LOG")
                .env_remove("SLUICE_LISTEN")
                .env_remove("SLUICE_DATA_DIR")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn sluice");
            Sluice {
                child,
                addr,
                _dir: dir,
            }
        }

        pub fn url(&self, path: &str) -> String {
            format!("http://{}{path}", self.addr)
        }

        pub fn pid(&self) -> u32 {
            self.child.id()
        }

        /// Wait until `GET /healthz` answers 200.
        pub async fn wait_healthy(&mut self, client: &reqwest::Client) {
            let deadline = Instant::now() + Duration::from_secs(20);
            let url = self.url("/healthz");
            loop {
                if let Some(status) = self.child.try_wait().expect("poll sluice") {
                    panic!("sluice exited during startup: {status}");
                }
                if let Ok(response) = client.get(&url).send().await
                    && response.status().is_success()
                {
                    return;
                }
                assert!(Instant::now() < deadline, "sluice did not become healthy");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }

        /// VmRSS and VmHWM of the process, in KiB.
        pub fn memory(&self) -> Memory {
            let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
                .expect("read /proc/<pid>/status");
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix(name))
                    .and_then(|rest| rest.split_whitespace().next())
                    .and_then(|kib| kib.parse().ok())
                    .unwrap_or(0)
            };
            Memory {
                rss_kib: field("VmRSS:"),
                hwm_kib: field("VmHWM:"),
            }
        }
    }

    impl Drop for Sluice {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    #[derive(Clone, Copy)]
    pub struct Memory {
        pub rss_kib: u64,
        pub hwm_kib: u64,
    }

    /// Defaults everywhere except the in-flight limits: 500 concurrent streams on 4 accounts
    /// would otherwise be held by the scheduler, which measures queueing, not proxying.
    fn config_toml(upstream: &str, data_dir: &Path) -> String {
        let mut toml = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = '{}'\n\n",
            data_dir.display()
        );
        for (i, key) in ACCOUNTS.iter().enumerate() {
            let _ = writeln!(
                toml,
                "[[accounts]]\nname = \"bench-{i}\"\napi_key = \"{key}\"\nupstream = \"{upstream}\"\n"
            );
        }
        toml.push_str(
            "[scheduler]\nmax_in_flight_per_account = 1000\nmax_in_flight_total = 4000\n",
        );
        toml
    }

    fn free_port() -> SocketAddr {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
        listener.local_addr().expect("local addr")
    }
}

/// CPU time actually run (`/proc/.../schedstat`, nanoseconds) by sluice, the relay and the
/// upstream, so that a phase can be charged per request.
mod cpu {
    use super::*;

    #[derive(Clone, Copy, Default)]
    pub struct Cpu {
        pub sluice: Duration,
        pub relay: Duration,
        pub upstream: Duration,
    }

    impl Cpu {
        pub fn now(sluice_pid: u32) -> Cpu {
            Cpu {
                sluice: tasks(&format!("/proc/{sluice_pid}/task"), |_| true),
                relay: own_threads(setup::RELAY_THREAD),
                upstream: own_threads(setup::UPSTREAM_THREAD),
            }
        }

        /// CPU used since `earlier`.
        pub fn since(self, earlier: Cpu) -> Cpu {
            Cpu {
                sluice: self.sluice.saturating_sub(earlier.sluice),
                relay: self.relay.saturating_sub(earlier.relay),
                upstream: self.upstream.saturating_sub(earlier.upstream),
            }
        }

        pub fn add(&mut self, other: Cpu) {
            self.sluice += other.sluice;
            self.relay += other.relay;
            self.upstream += other.upstream;
        }
    }

    /// Jiffies the whole machine spent, and how many of them the hypervisor stole.
    #[derive(Clone, Copy)]
    pub struct Machine {
        total: u64,
        steal: u64,
    }

    impl Machine {
        pub fn now() -> Option<Machine> {
            let stat = std::fs::read_to_string("/proc/stat").ok()?;
            let fields: Vec<u64> = stat
                .lines()
                .next()?
                .strip_prefix("cpu ")?
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
            Some(Machine {
                // user nice system idle iowait irq softirq steal (guest time is inside user).
                total: fields.iter().take(8).sum(),
                steal: *fields.get(7)?,
            })
        }

        /// The share of CPU time stolen since `earlier`, in percent.
        pub fn steal_since(self, earlier: Machine) -> f64 {
            let total = self.total.saturating_sub(earlier.total).max(1);
            100.0 * self.steal.saturating_sub(earlier.steal) as f64 / total as f64
        }
    }

    fn own_threads(name: &str) -> Duration {
        tasks("/proc/self/task", |task| {
            std::fs::read_to_string(task.join("comm")).is_ok_and(|comm| comm.starts_with(name))
        })
    }

    /// Sum of the on-CPU time of every task under `dir` that `keep` accepts.
    fn tasks(dir: &str, keep: impl Fn(&Path) -> bool) -> Duration {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Duration::ZERO;
        };
        entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|task| keep(task))
            .filter_map(|task| std::fs::read_to_string(task.join("schedstat")).ok())
            .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
            .map(Duration::from_nanos)
            .sum()
    }
}

/// Sending requests and reading responses, timed.
mod client {
    use super::cpu::Cpu;
    use super::*;

    #[derive(Clone, Copy, PartialEq, Eq, Debug)]
    pub enum Via {
        Direct,
        Relay,
        Sluice,
    }

    impl Via {
        pub fn name(self) -> &'static str {
            match self {
                Via::Direct => "direct",
                Via::Relay => "tcp relay (reference)",
                Via::Sluice => "sluice",
            }
        }
    }

    /// Where requests go, and with which key: an account's (direct, relay) or the client's
    /// own (sluice swaps in an account's).
    #[derive(Clone)]
    pub struct Target {
        pub via: Via,
        url: Arc<str>,
    }

    impl Target {
        pub fn new(via: Via, url: String) -> Target {
            Target {
                via,
                url: url.into(),
            }
        }

        fn post(
            &self,
            client: &reqwest::Client,
            body: &'static str,
            seq: usize,
        ) -> reqwest::RequestBuilder {
            let key = match self.via {
                Via::Direct | Via::Relay => ACCOUNTS[seq % ACCOUNTS.len()],
                Via::Sluice => CLIENT_KEY,
            };
            client
                .post(&*self.url)
                .header("content-type", "application/json")
                .header("anthropic-version", "2023-06-01")
                .header("x-api-key", key)
                .body(body)
        }
    }

    /// One client for every target: HTTP/1.1, keep-alive, `TCP_NODELAY`, unbounded idle pool.
    pub fn http_client() -> reqwest::Client {
        sluice_server::upstream::install_crypto_provider();
        reqwest::Client::builder()
            .http1_only()
            .tcp_nodelay(true)
            .no_proxy()
            .pool_max_idle_per_host(usize::MAX)
            .pool_idle_timeout(None)
            .build()
            .expect("http client")
    }

    /// One non-streaming request, timed from send to the last body byte.
    pub async fn message(client: &reqwest::Client, target: &Target, seq: usize) -> Duration {
        let start = Instant::now();
        let response = target
            .post(client, BODY, seq)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{} request failed: {e}", target.via.name()));
        let status = response.status();
        let body = response.bytes().await.expect("read body");
        let elapsed = start.elapsed();
        assert!(
            status.is_success(),
            "{} answered {status}: {}",
            target.via.name(),
            String::from_utf8_lossy(&body)
        );
        elapsed
    }

    /// Latencies of a set of requests, the wall time and the CPU they took.
    #[derive(Default)]
    pub struct Phase {
        pub latencies: Vec<Duration>,
        pub elapsed: Duration,
        pub cpu: Cpu,
    }

    impl Phase {
        pub fn absorb(&mut self, other: Phase) {
            self.latencies.extend(other.latencies);
            self.elapsed += other.elapsed;
            self.cpu.add(other.cpu);
        }

        pub fn per_second(&self) -> f64 {
            self.latencies.len() as f64 / self.elapsed.as_secs_f64()
        }
    }

    /// A closed loop: `concurrency` tasks send `requests` requests in all, each the next one as
    /// soon as its previous one is complete.
    pub async fn closed_loop(
        client: &reqwest::Client,
        target: &Target,
        requests: usize,
        concurrency: usize,
        sluice_pid: u32,
    ) -> Phase {
        let next = Arc::new(AtomicUsize::new(0));
        let cpu = Cpu::now(sluice_pid);
        let start = Instant::now();
        let mut tasks = JoinSet::new();
        for _ in 0..concurrency.min(requests) {
            let (client, target, next) = (client.clone(), target.clone(), next.clone());
            tasks.spawn(async move {
                let mut latencies = Vec::with_capacity(requests / concurrency + 1);
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= requests {
                        return latencies;
                    }
                    latencies.push(message(&client, &target, seq).await);
                }
            });
        }
        let mut latencies = Vec::with_capacity(requests);
        while let Some(done) = tasks.join_next().await {
            latencies.extend(done.expect("request task"));
        }
        Phase {
            latencies,
            elapsed: start.elapsed(),
            cpu: Cpu::now(sluice_pid).since(cpu),
        }
    }

    /// One SSE stream: when its first complete event arrived, and every event's arrival
    /// relative to the first.
    pub struct StreamSample {
        pub first_event: Duration,
        pub offsets: Vec<Duration>,
    }

    /// One streaming request, read frame by frame; each event is timestamped on receipt of the
    /// frame that completes it (its terminating blank line).
    pub async fn stream(client: &reqwest::Client, target: &Target, seq: usize) -> StreamSample {
        let start = Instant::now();
        let mut response = target
            .post(client, STREAM_BODY, seq)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{} stream failed: {e}", target.via.name()));
        assert!(
            response.status().is_success(),
            "{} answered {}",
            target.via.name(),
            response.status()
        );
        let mut arrivals = Vec::with_capacity(DELTAS + 8);
        let mut boundary = EventBoundary::default();
        while let Some(chunk) = response.chunk().await.expect("read stream") {
            let now = Instant::now();
            for _ in 0..boundary.feed(&chunk) {
                arrivals.push(now);
            }
        }
        let first = *arrivals.first().expect("at least one event");
        StreamSample {
            first_event: first - start,
            offsets: arrivals.iter().map(|t| *t - first).collect(),
        }
    }

    /// Counts completed SSE events (a blank line ends one) across chunk boundaries.
    #[derive(Default)]
    struct EventBoundary {
        after_newline: bool,
    }

    impl EventBoundary {
        fn feed(&mut self, bytes: &[u8]) -> usize {
            let mut completed = 0;
            for &b in bytes {
                match b {
                    b'\n' if self.after_newline => {
                        completed += 1;
                        self.after_newline = false;
                    }
                    b'\n' => self.after_newline = true,
                    b'\r' => {}
                    _ => self.after_newline = false,
                }
            }
            completed
        }
    }

    /// `streams` streams on one target, all in flight at once.
    pub async fn concurrent_streams(
        client: &reqwest::Client,
        target: &Target,
        streams: usize,
    ) -> Vec<StreamSample> {
        let mut tasks = JoinSet::new();
        for seq in 0..streams {
            let (client, target) = (client.clone(), target.clone());
            tasks.spawn(async move { stream(&client, &target, seq).await });
        }
        let mut samples = Vec::with_capacity(streams);
        while let Some(done) = tasks.join_next().await {
            samples.push(done.expect("stream task"));
        }
        samples
    }
}

/// The measurement plan: warm-up, then each part with the targets' phases alternating.
mod scenario {
    use super::client::{Phase, StreamSample, Target, Via};
    use super::cpu::Cpu;
    use super::setup::{Memory, Relay, Sluice, Upstream};
    use super::*;

    pub struct Results {
        pub sluice_pid: u32,
        /// Percent of the machine's CPU time the hypervisor stole during the measurements.
        pub steal_percent: Option<f64>,
        pub latency: Vec<LatencyRun>,
        pub streaming: Vec<StreamRun>,
        pub memory: Vec<(&'static str, Memory)>,
    }

    pub struct LatencyRun {
        pub concurrency: usize,
        pub direct: Phase,
        pub relay: Phase,
        pub sluice: Phase,
        /// Per round: p99 of the relay's and of sluice's slice minus p99 of the direct slice
        /// of the same round. Their median shrugs off a stall that hit one slice only.
        pub relay_added_p99: Vec<f64>,
        pub sluice_added_p99: Vec<f64>,
    }

    #[derive(Default)]
    pub struct StreamRun {
        pub name: String,
        /// Time to first event is only reported where streams did not compete with each other
        /// for the upstream and the client.
        pub report_first_event: bool,
        pub direct: Vec<StreamSample>,
        pub sluice: Vec<StreamSample>,
        /// Direct streams run alongside `direct` (paired scenario): the noise floor's partner.
        pub twin: Vec<StreamSample>,
        /// CPU spent during the direct and the sluice phases.
        pub direct_cpu: Cpu,
        pub sluice_cpu: Cpu,
    }

    pub async fn run(
        scale: &Scale,
        upstream: &Upstream,
        relay: &Relay,
        sluice: &mut Sluice,
    ) -> Results {
        let client = client::http_client();
        sluice.wait_healthy(&client).await;
        // Let startup work settle before calling it idle.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut memory = vec![("idle after start", sluice.memory())];
        let machine = cpu::Machine::now();
        let pid = sluice.pid();
        let direct = Target::new(Via::Direct, upstream.fake.url("/v1/messages"));
        let relayed = Target::new(Via::Relay, format!("http://{}/v1/messages", relay.addr));
        let proxied = Target::new(Via::Sluice, sluice.url("/v1/messages"));

        // Non-streaming: the upstream answers at once.
        upstream.reply_with(&Reply::ok());
        let all = [&direct, &relayed, &proxied];
        for target in all {
            client::closed_loop(&client, target, 300, 1, pid).await;
            client::closed_loop(&client, target, CONCURRENCY * 20, CONCURRENCY, pid).await;
        }
        let sequential = scale.of(SEQUENTIAL_REQUESTS, 2 * ROUNDS);
        let concurrent = scale.of(CONCURRENT_REQUESTS, CONCURRENCY * ROUNDS);
        let latency = vec![
            latency_run(&client, all, sequential, 1, pid).await,
            latency_run(&client, all, concurrent, CONCURRENCY, pid).await,
        ];
        memory.push(("after non-streaming runs", sluice.memory()));

        // Streaming: paced events.
        let paced = Reply::ok().events(DELTAS).event_delay(EVENT_DELAY);
        let expected_events = paced.expected_stream_events_for_model(MODEL).len();
        upstream.reply_with(&paced);
        let pair = [&direct, &proxied];
        for target in pair {
            for seq in 0..5 {
                client::stream(&client, target, seq).await;
            }
            client::concurrent_streams(&client, target, CONCURRENT_STREAMS).await;
        }
        let streams = scale.of(SEQUENTIAL_STREAMS, 10);
        let paired_streams = scale.of(PAIRED_STREAMS, 10);
        let rounds = scale.of(CONCURRENT_STREAM_ROUNDS, 2);
        let streaming = vec![
            sequential_streams(&client, pair, streams, pid).await,
            paired_streams_run(&client, pair, paired_streams).await,
            concurrent_stream_rounds(&client, pair, rounds, pid).await,
        ];
        memory.push(("after concurrent streams", sluice.memory()));
        for run in &streaming {
            for sample in run.direct.iter().chain(&run.sluice).chain(&run.twin) {
                assert_eq!(
                    sample.offsets.len(),
                    expected_events,
                    "{}: a stream did not carry exactly the upstream's events",
                    run.name
                );
            }
        }

        Results {
            sluice_pid: pid,
            steal_percent: machine
                .zip(cpu::Machine::now())
                .map(|(a, b)| b.steal_since(a)),
            latency,
            streaming,
            memory,
        }
    }

    /// Every order of the targets in turn, in `ROUNDS` slices of `requests / ROUNDS` each.
    async fn latency_run(
        client: &reqwest::Client,
        targets: [&Target; 3],
        requests: usize,
        concurrency: usize,
        pid: u32,
    ) -> LatencyRun {
        let mut run = LatencyRun {
            concurrency,
            direct: Phase::default(),
            relay: Phase::default(),
            sluice: Phase::default(),
            relay_added_p99: Vec::with_capacity(ROUNDS),
            sluice_added_p99: Vec::with_capacity(ROUNDS),
        };
        for round in 0..ROUNDS {
            let mut p99 = [0.0; 3];
            for target in rotation(targets, round) {
                let slice = requests / ROUNDS;
                let phase = client::closed_loop(client, target, slice, concurrency, pid).await;
                let (index, total) = match target.via {
                    Via::Direct => (0, &mut run.direct),
                    Via::Relay => (1, &mut run.relay),
                    Via::Sluice => (2, &mut run.sluice),
                };
                p99[index] = stats::of_durations(&phase.latencies).p99;
                total.absorb(phase);
            }
            run.relay_added_p99.push(p99[1] - p99[0]);
            run.sluice_added_p99.push(p99[2] - p99[0]);
        }
        run
    }

    /// One stream at a time, alternating targets.
    async fn sequential_streams(
        client: &reqwest::Client,
        pair: [&Target; 2],
        streams: usize,
        pid: u32,
    ) -> StreamRun {
        let mut run = StreamRun {
            name: "one at a time".into(),
            report_first_event: true,
            ..StreamRun::default()
        };
        for seq in 0..streams {
            for target in rotation(pair, seq) {
                let cpu = Cpu::now(pid);
                let sample = client::stream(client, target, seq).await;
                match target.via {
                    Via::Sluice => {
                        run.sluice_cpu.add(Cpu::now(pid).since(cpu));
                        run.sluice.push(sample);
                    }
                    _ => {
                        run.direct_cpu.add(Cpu::now(pid).since(cpu));
                        run.direct.push(sample);
                    }
                }
            }
        }
        run
    }

    /// A sluice stream and two direct streams started together, so that the upstream paces
    /// all three on the same timer ticks; the send order rotates.
    async fn paired_streams_run(
        client: &reqwest::Client,
        [direct, proxied]: [&Target; 2],
        runs: usize,
    ) -> StreamRun {
        let mut run = StreamRun {
            name: "paired (1 sluice + 2 direct in flight)".into(),
            ..StreamRun::default()
        };
        for seq in 0..runs {
            // Roles: 0 = direct, 1 = twin (direct), 2 = sluice.
            let roles = rotation([0, 1, 2], seq);
            let target = |role: usize| if role == 2 { proxied } else { direct };
            let (a, b, c) = tokio::join!(
                client::stream(client, target(roles[0]), seq),
                client::stream(client, target(roles[1]), seq),
                client::stream(client, target(roles[2]), seq),
            );
            for (role, sample) in roles.into_iter().zip([a, b, c]) {
                match role {
                    0 => run.direct.push(sample),
                    1 => run.twin.push(sample),
                    _ => run.sluice.push(sample),
                }
            }
        }
        run
    }

    /// Rounds of `CONCURRENT_STREAMS` streams in flight at once, alternating targets.
    async fn concurrent_stream_rounds(
        client: &reqwest::Client,
        pair: [&Target; 2],
        rounds: usize,
        pid: u32,
    ) -> StreamRun {
        let mut run = StreamRun {
            name: format!("{CONCURRENT_STREAMS} in flight"),
            report_first_event: true,
            ..StreamRun::default()
        };
        for round in 0..rounds {
            for target in rotation(pair, round) {
                let cpu = Cpu::now(pid);
                let samples = client::concurrent_streams(client, target, CONCURRENT_STREAMS).await;
                match target.via {
                    Via::Sluice => {
                        run.sluice_cpu.add(Cpu::now(pid).since(cpu));
                        run.sluice.extend(samples);
                    }
                    _ => {
                        run.direct_cpu.add(Cpu::now(pid).since(cpu));
                        run.direct.extend(samples);
                    }
                }
            }
        }
        run
    }

    /// The `round`-th order of `items`: rotations, then the reversed rotations (A B, B A, B A,
    /// A B for two; all six orders for three).
    fn rotation<T: Copy, const N: usize>(mut items: [T; N], round: usize) -> [T; N] {
        items.rotate_left(round % N);
        if (round / N) % 2 == 1 {
            items.reverse();
        }
        items
    }
}

/// Exact percentiles (sort everything, take the nearest rank).
mod stats {
    use super::*;

    /// Percentiles of a sample, in microseconds.
    pub struct Summary {
        pub count: usize,
        pub mean: f64,
        pub p50: f64,
        pub p90: f64,
        pub p99: f64,
        pub p999: f64,
        pub max: f64,
    }

    pub fn micros(d: Duration) -> f64 {
        d.as_secs_f64() * 1e6
    }

    /// Nearest-rank percentile of an ascending sample, `q` in [0, 1].
    pub fn percentile(sorted: &[f64], q: f64) -> f64 {
        assert!(!sorted.is_empty(), "percentile of an empty sample");
        let rank = (q * sorted.len() as f64).ceil() as usize;
        sorted[rank.clamp(1, sorted.len()) - 1]
    }

    pub fn summarize(mut values: Vec<f64>) -> Summary {
        values.sort_by(f64::total_cmp);
        Summary {
            count: values.len(),
            mean: mean(&values),
            p50: percentile(&values, 0.50),
            p90: percentile(&values, 0.90),
            p99: percentile(&values, 0.99),
            p999: percentile(&values, 0.999),
            max: *values.last().expect("nonempty"),
        }
    }

    fn mean(values: &[f64]) -> f64 {
        values.iter().sum::<f64>() / values.len() as f64
    }

    /// Standard error of the mean of `values`.
    fn standard_error(values: &[f64]) -> f64 {
        let n = values.len() as f64;
        let m = mean(values);
        let variance = values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        (variance / n).sqrt()
    }

    pub fn of_durations(values: &[Duration]) -> Summary {
        summarize(values.iter().copied().map(micros).collect())
    }

    /// Per-event delays of streams `a` against streams `b`, paired in order (`a[k]` with `b[k]`).
    pub struct EventDelay {
        /// Every `offset_i(a[k]) − offset_i(b[k])` for events `i ≥ 1`, in microseconds.
        pub all: Summary,
        /// Standard error of the mean, taken over pairs: the events of one stream share its
        /// upstream's timer drift, so they are not independent samples.
        pub sem: f64,
    }

    pub fn event_delay(a: &[&client::StreamSample], b: &[&client::StreamSample]) -> EventDelay {
        let pairs: Vec<Vec<f64>> = a
            .iter()
            .zip(b)
            .map(|(a, b)| {
                a.offsets
                    .iter()
                    .zip(&b.offsets)
                    .skip(1)
                    .map(|(x, y)| micros(*x) - micros(*y))
                    .collect()
            })
            .collect();
        let pair_means: Vec<f64> = pairs.iter().map(|deltas| mean(deltas)).collect();
        EventDelay {
            all: summarize(pairs.concat()),
            sem: standard_error(&pair_means),
        }
    }
}

/// The markdown report.
mod report {
    use super::client::{Phase, StreamSample, Via};
    use super::scenario::{LatencyRun, Results, StreamRun};
    use super::stats::{Summary, event_delay, micros, of_durations, summarize};
    use super::*;

    pub fn render(scale: &Scale, results: &Results, runtime: Duration) -> String {
        let mut out = String::new();
        header(&mut out, scale, results);
        latency(&mut out, &results.latency);
        streaming(&mut out, &results.streaming);
        memory(&mut out, results);
        let _ = writeln!(out, "\nTotal bench runtime: {:.1} s", runtime.as_secs_f64());
        out
    }

    fn header(out: &mut String, scale: &Scale, results: &Results) {
        let command = match &scale.raw {
            Some(raw) => {
                format!("SLUICE_BENCH_SCALE={raw} cargo bench -p sluice --bench overhead")
            }
            None => "cargo bench -p sluice --bench overhead".to_owned(),
        };
        let nproc = std::thread::available_parallelism().map_or(0, usize::from);
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines().find_map(|l| {
                    let model = l.strip_prefix("model name")?;
                    Some(model.trim_start_matches([' ', '\t', ':']).to_owned())
                })
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map_or_else(|_| "unknown".into(), |k| k.trim().to_owned());
        let _ = writeln!(out, "# sluice overhead benchmark\n");
        let _ = writeln!(out, "- command: `{command}` (scale {})", scale.factor);
        let steal = results.steal_percent.map_or_else(String::new, |s| {
            format!("; CPU stolen by the hypervisor during the run: {s:.1}%")
        });
        let _ = writeln!(
            out,
            "- machine: nproc={nproc}, {cpu}, Linux {kernel}{steal}"
        );
        if nproc < 4 {
            let _ = writeln!(
                out,
                "- note: with {nproc} CPUs the load client, the upstream and the hop share the \
                 cores, so at concurrency 64 (a closed loop at full speed) latency is mostly \
                 queueing for CPU and tracks each hop's CPU cost per request; the tcp relay rows \
                 show what even a do-nothing hop adds here"
            );
        }
        let _ = writeln!(
            out,
            "- upstream: sluice-fake on its own 1-worker tokio runtime, {} API-key accounts",
            ACCOUNTS.len()
        );
        let _ = writeln!(
            out,
            "- sluice: the `sluice serve` binary as a child process (pid {}), default config \
             except scheduler in-flight limits (1000 per account, 4000 total), log level info \
             to /dev/null",
            results.sluice_pid
        );
        let _ = writeln!(
            out,
            "- client: one current-thread runtime, reqwest HTTP/1.1 keep-alive + TCP_NODELAY for \
             every target; the phases of the targets alternate in every order"
        );
        let _ = writeln!(
            out,
            "- all times in µs; CPU = on-CPU time from /proc/<pid>/task/*/schedstat"
        );
    }

    fn latency(out: &mut String, runs: &[LatencyRun]) {
        let _ = writeln!(
            out,
            "\n## Non-streaming `POST /v1/messages` (per request, send → last body byte)\n"
        );
        let _ = writeln!(
            out,
            "| concurrency | target | requests | req/s | mean | p50 | p90 | p99 | p99.9 | max \
             | hop CPU/req | upstream CPU/req |"
        );
        let _ = writeln!(
            out,
            "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for run in runs {
            let rows = [
                (Via::Direct, &run.direct, None),
                (Via::Relay, &run.relay, Some(run.relay.cpu.relay)),
                (Via::Sluice, &run.sluice, Some(run.sluice.cpu.sluice)),
            ];
            for (via, phase, hop_cpu) in rows {
                let s = of_durations(&phase.latencies);
                let per_request = |cpu: Duration| micros(cpu) / s.count as f64;
                let hop =
                    hop_cpu.map_or_else(|| "–".to_owned(), |c| format!("{:.0}", per_request(c)));
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {hop} | {:.0} |",
                    run.concurrency,
                    via.name(),
                    s.count,
                    phase.per_second(),
                    s.mean,
                    s.p50,
                    s.p90,
                    s.p99,
                    s.p999,
                    s.max,
                    per_request(phase.cpu.upstream)
                );
            }
        }
        let _ = writeln!(
            out,
            "\nAdded latency (same percentile through the hop − direct, over all requests) and \
             ratios hop/direct. The verdict uses the median over the {ROUNDS} rounds of each \
             round's added p99 (a round's slices run close together in time), so that a stall of \
             the machine during one slice cannot decide it either way.\n"
        );
        let _ = writeln!(
            out,
            "| concurrency | hop | added p50 | added p99 | p50 ratio | p99 ratio | req/s ratio \
             | added p99, median of rounds | target | verdict |"
        );
        let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---:|---:|---|---|");
        for run in runs {
            let target = if run.concurrency == 1 {
                TARGET_ADDED_P99_C1_US
            } else {
                TARGET_ADDED_P99_C64_US
            };
            let hops = [
                ("sluice", &run.sluice, &run.sluice_added_p99),
                ("tcp relay", &run.relay, &run.relay_added_p99),
            ];
            for (hop, phase, rounds) in hops {
                let row = added_row(&run.direct, phase);
                let added_p99 = summarize(rounds.clone()).p50;
                let (goal, note) = if hop == "sluice" {
                    (
                        format!("added p99 < {target:.0} µs"),
                        verdict(added_p99 < target),
                    )
                } else {
                    ("(reference)".to_owned(), "–")
                };
                let _ = writeln!(
                    out,
                    "| {} | {hop} | {row} | {added_p99:+.0} | {goal} | {note} |",
                    run.concurrency
                );
            }
        }
    }

    /// The "added p50 | added p99 | ratios" cells of `hop` against `direct`.
    fn added_row(direct: &Phase, hop: &Phase) -> String {
        let (d, h) = (
            of_durations(&direct.latencies),
            of_durations(&hop.latencies),
        );
        format!(
            "{:+.0} | {:+.0} | {:.2}× | {:.2}× | {:.2}×",
            h.p50 - d.p50,
            h.p99 - d.p99,
            h.p50 / d.p50,
            h.p99 / d.p99,
            hop.per_second() / direct.per_second()
        )
    }

    fn streaming(out: &mut String, runs: &[StreamRun]) {
        let events = DELTAS + 6;
        let _ = writeln!(
            out,
            "\n## Streaming (SSE: {DELTAS} deltas, {events} events in all, {} ms apart upstream)\n",
            EVENT_DELAY.as_millis()
        );
        let _ = writeln!(
            out,
            "Time to first event (send → first complete event received):\n"
        );
        let _ = writeln!(
            out,
            "| scenario | target | streams | mean | p50 | p90 | p99 | max | sluice CPU/stream \
             | upstream CPU/stream |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        let timed: Vec<&StreamRun> = runs.iter().filter(|r| r.report_first_event).collect();
        for run in &timed {
            let rows = [
                ("direct", &run.direct, &run.direct_cpu),
                ("sluice", &run.sluice, &run.sluice_cpu),
            ];
            for (name, samples, cpu) in rows {
                let s = first_events(samples);
                let per_stream = |cpu: Duration| micros(cpu) / s.count as f64;
                let hop = if name == "sluice" {
                    format!("{:.0}", per_stream(cpu.sluice))
                } else {
                    "–".to_owned()
                };
                let _ = writeln!(
                    out,
                    "| {} | {name} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {hop} | {:.0} |",
                    run.name,
                    s.count,
                    s.mean,
                    s.p50,
                    s.p90,
                    s.p99,
                    s.max,
                    per_stream(cpu.upstream)
                );
            }
        }
        let _ = writeln!(
            out,
            "\n| scenario | added TTFE p50 | added TTFE p99 | TTFE p50 ratio | TTFE p99 ratio |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|");
        for run in &timed {
            let (d, s) = (first_events(&run.direct), first_events(&run.sluice));
            let _ = writeln!(
                out,
                "| {} | {:+.0} | {:+.0} | {:.2}× | {:.2}× |",
                run.name,
                s.p50 - d.p50,
                s.p99 - d.p99,
                s.p50 / d.p50,
                s.p99 / d.p99
            );
        }

        let _ = writeln!(
            out,
            "\nPer-event delay: (arrival_i − arrival_0) of a stream minus the same of its partner, \
             over every event i ≥ 1 of every pair. \"sluice − direct\" pairs each sluice stream \
             with a direct one run next to it (together, in the paired scenario); \"direct − \
             direct\" pairs direct streams with each other and is the noise floor (upstream \
             timer jitter, scheduling). Negative values mean sluice's first event came relatively \
             later than the rest (see time to first event). ±SE is over pairs. Verdict: PASS when \
             the data show no delay above {PER_EVENT_TOLERANCE_US:.0} µs: p50 ≤ \
             {PER_EVENT_TOLERANCE_US:.0} µs and mean ≤ {PER_EVENT_TOLERANCE_US:.0} µs + 3 SE.\n"
        );
        let _ = writeln!(
            out,
            "| scenario | comparison | samples | mean | ±SE | p50 | p99 | max | verdict |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---|");
        for run in runs {
            let direct: Vec<_> = run.direct.iter().collect();
            let sluice: Vec<_> = run.sluice.iter().collect();
            let (floor_a, floor_b): (Vec<_>, Vec<_>) = if run.twin.is_empty() {
                (
                    run.direct.iter().skip(1).step_by(2).collect(),
                    run.direct.iter().step_by(2).collect(),
                )
            } else {
                (run.twin.iter().collect(), direct.clone())
            };
            let rows = [
                ("sluice − direct", event_delay(&sluice, &direct), true),
                ("direct − direct", event_delay(&floor_a, &floor_b), false),
            ];
            for (comparison, delay, judged) in rows {
                let (s, sem) = (delay.all, delay.sem);
                let note = if judged {
                    verdict(
                        s.p50 <= PER_EVENT_TOLERANCE_US
                            && s.mean <= PER_EVENT_TOLERANCE_US + 3.0 * sem,
                    )
                } else {
                    "noise floor"
                };
                let _ = writeln!(
                    out,
                    "| {} | {comparison} | {} | {:+.1} | {:.1} | {:+.0} | {:+.0} | {:+.0} | {note} |",
                    run.name, s.count, s.mean, sem, s.p50, s.p99, s.max
                );
            }
        }
    }

    fn memory(out: &mut String, results: &Results) {
        let _ = writeln!(
            out,
            "\n## sluice memory (/proc/{}/status)\n",
            results.sluice_pid
        );
        let _ = writeln!(out, "| when | VmRSS | VmHWM (peak) |");
        let _ = writeln!(out, "|---|---:|---:|");
        for (when, m) in &results.memory {
            let _ = writeln!(out, "| {when} | {} | {} |", mib(m.rss_kib), mib(m.hwm_kib));
        }
    }

    fn first_events(samples: &[StreamSample]) -> Summary {
        summarize(samples.iter().map(|s| micros(s.first_event)).collect())
    }

    fn mib(kib: u64) -> String {
        format!("{:.1} MiB", kib as f64 / 1024.0)
    }

    fn verdict(pass: bool) -> &'static str {
        if pass { "PASS" } else { "MISS" }
    }
}
