//! Graceful shutdown of the real binary: on SIGTERM sluice stops accepting, lets the streams
//! in flight finish (within `shutdown.drain`), saves what it learned and exits 0.

#![cfg(unix)]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use sluice_fake::{QuotaHeaders, Reply};
use sluice_store::Store;
use support::*;

fn terminate(running: &Running) {
    let pid = running.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
}

fn wait_exit(running: &mut Running, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = running.child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "sluice did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_lets_a_stream_in_flight_finish_saves_state_and_exits_0() {
    let fake = Fake::start();
    let key = "sk-ant-api03-SHUTDOWN";
    fake.fake.add_account(key);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    fake.fake.set_quota_headers(
        key,
        QuotaHeaders::unified(0.42, now + 3600, 0.1, now + 86_400),
    );
    fake.fake.set_default(
        key,
        Reply::ok()
            .events(15)
            .event_delay(Duration::from_millis(100)),
    );
    let setup = Setup::new(
        &fake.fake,
        &format!("[[accounts]]\nname = \"s\"\napi_key = \"{key}\"\n"),
    );
    let mut server = serve(&setup);
    let url = server.url.clone();
    let stream = {
        let url = url.clone();
        fake.runtime.spawn(async move { post(&url, true).await })
    };
    fake.block_on(wait_for_status(&url, "the stream in flight", |s| {
        account(s, "s").is_some_and(|a| a["in_flight"] == 1)
    }));
    terminate(&server);

    // No new connections once shutdown began…
    fake.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(5);
        while client()
            .get(format!("{url}/healthz"))
            .timeout(Duration::from_millis(500))
            .send()
            .await
            .is_ok()
        {
            assert!(Instant::now() < deadline, "still accepting after SIGTERM");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    // …while the stream already under way runs to its end.
    let (code, served_by, body) = fake.block_on(stream).unwrap();
    assert_eq!((code, served_by.as_str()), (200, "s"));
    assert!(body.contains("event: message_stop"), "{body}");
    let status = wait_exit(&mut server, Duration::from_secs(20));
    assert!(status.success(), "exit status {status}");

    // What it learned is in the database for the next start.
    let quota = setup.store().quota().unwrap();
    let saved = quota.iter().find(|r| r.name == "s").expect("quota saved");
    assert!(saved.quota_json.contains("0.42"), "{}", saved.quota_json);
    assert!(
        server.log.lock().contains("shutting down"),
        "{}",
        server.log.lock()
    );
}

#[test]
fn the_drain_is_bounded() {
    let fake = Fake::start();
    let key = "sk-ant-api03-LONG";
    fake.fake.add_account(key);
    // A stream far longer than the drain allows.
    fake.fake.set_default(
        key,
        Reply::ok()
            .events(600)
            .event_delay(Duration::from_millis(100)),
    );
    let setup = Setup::new(
        &fake.fake,
        &format!("[shutdown]\ndrain = \"1s\"\n\n[[accounts]]\nname = \"l\"\napi_key = \"{key}\"\n"),
    );
    let mut server = serve(&setup);
    let url = server.url.clone();
    let stream = {
        let url = url.clone();
        fake.runtime.spawn(async move {
            let response = client()
                .post(format!("{url}/v1/messages"))
                .header("content-type", "application/json")
                .body(r#"{"model":"m","max_tokens":8,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#)
                .send()
                .await
                .unwrap();
            response.text().await.is_ok()
        })
    };
    fake.block_on(wait_for_status(&url, "the stream in flight", |s| {
        account(s, "l").is_some_and(|a| a["in_flight"] == 1)
    }));
    terminate(&server);
    let status = wait_exit(&mut server, Duration::from_secs(20));
    assert!(status.success(), "exit status {status}");
    let completed_cleanly = fake.block_on(stream).unwrap();
    assert!(
        !completed_cleanly,
        "the 60-second stream was cut at the drain limit"
    );
    assert!(
        server.log.lock().contains("drain timed out"),
        "{}",
        server.log.lock()
    );
}
