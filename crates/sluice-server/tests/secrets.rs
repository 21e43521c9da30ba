//! No secret ever shows in `/status`, debug output or any log line. Its own test binary:
//! tracing's per-callsite caching makes a thread-local capture unreliable when other tests
//! in the same process log without one.

mod common;

use common::*;
use sluice_config::Secret;
use sluice_fake::Reply;

#[test]
fn no_secret_reaches_status_or_any_log_line() {
    let capture = LogCapture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let secrets = [
        "sk-ant-api03-SECRETKEY",
        "sk-ant-oat01-SECRETTOKEN",
        "sk-ant-client-own-key",
        "sk-sluice-CLIENTKEY",
    ];
    let status_text = runtime.block_on(async {
        let h = Harness::start_with(
            &[
                api("key", "sk-ant-api03-SECRETKEY"),
                oauth("sub", "sk-ant-oat01-SECRETTOKEN"),
            ],
            |c| c.client_keys = vec![Secret::from("sk-sluice-CLIENTKEY".to_owned())],
        )
        .await;
        h.fake
            .script("sk-ant-api03-SECRETKEY", [Reply::status(401)]);
        h.fake.script(
            "sk-ant-oat01-SECRETTOKEN",
            [Reply::status(429).retry_after(5)],
        );
        for _ in 0..3 {
            let _ = h
                .messages(&stream_body(Some("s")))
                .header("x-api-key", "sk-sluice-CLIENTKEY")
                .send()
                .await
                .unwrap()
                .bytes()
                .await;
        }
        let _ = h
            .client
            .post(h.url("/v1/messages"))
            .header("x-api-key", "sk-ant-client-own-key")
            .send()
            .await;
        let status = h
            .client
            .get(h.url("/status"))
            .header("x-api-key", "sk-sluice-CLIENTKEY")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let config_debug = format!("{:?}", h.state.config());
        h.stop().await;
        format!("{status}\n{config_debug}")
    });
    let logs = capture.text();
    assert!(logs.contains("request"), "requests were logged: {logs}");
    for secret in secrets {
        assert!(
            !status_text.contains(secret),
            "{secret} in status/debug output"
        );
        assert!(!logs.contains(secret), "{secret} in logs");
    }
}
