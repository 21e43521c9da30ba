//! A conversation stays on its home account while home can serve, moves when it cannot
//! (and stays where it moved, no bouncing), and returns home once home recovers; a home of
//! better priority wins it back too.

mod common;

use std::time::Duration;

use common::*;
use sluice_fake::Reply;

async fn send(
    h: &Harness,
    session_header: Option<(&str, &str)>,
    body: serde_json::Value,
) -> String {
    let mut request = h.messages(&body);
    if let Some((name, value)) = session_header {
        request = request.header(name, value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let account = response.headers()["x-sluice-account"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = response.bytes().await;
    account
}

fn key_of(account: &str) -> &'static str {
    match account {
        "a" => "sk-a",
        "b" => "sk-b",
        "c" => "sk-c",
        other => panic!("unknown account {other}"),
    }
}

#[tokio::test]
async fn a_conversation_keeps_its_account_moves_when_benched_and_returns_home() {
    let h = Harness::start(&[api("a", "sk-a"), api("b", "sk-b"), api("c", "sk-c")]).await;
    let conv = Some((
        "x-claude-code-session-id",
        "65d2797d-c22d-4dea-b30c-191e0aefcf30",
    ));

    let home = send(&h, conv, plain_body()).await;
    // Unrelated traffic rotates across the pool…
    let mut others = Vec::new();
    for _ in 0..3 {
        others.push(send(&h, None, plain_body()).await);
    }
    others.sort();
    others.dedup();
    assert!(others.len() >= 2, "unbound requests spread: {others:?}");
    // …while the conversation stays home.
    for _ in 0..5 {
        assert_eq!(send(&h, conv, plain_body()).await, home);
    }

    // Home is rate limited: the conversation moves (failover), then stays where it went.
    h.fake
        .script(key_of(&home), [Reply::status(429).retry_after(1)]);
    let away = send(&h, conv, plain_body()).await;
    assert_ne!(away, home);
    for _ in 0..3 {
        assert_eq!(
            send(&h, conv, plain_body()).await,
            away,
            "no bouncing while home is out"
        );
    }

    // Home recovers: the conversation goes back.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(send(&h, conv, plain_body()).await, home);
    h.stop().await;
}

#[tokio::test]
async fn a_conversation_returns_to_a_better_priority_home_once_it_recovers() {
    let mut main = api("a", "sk-a");
    main.priority = 0;
    let mut backup = api("b", "sk-b");
    backup.priority = 5;
    let h = Harness::start(&[main, backup]).await;
    let conv = Some(("x-sluice-session", "priority-conversation"));
    assert_eq!(send(&h, conv, plain_body()).await, "a");
    h.fake.script("sk-a", [Reply::status(429).retry_after(1)]);
    assert_eq!(send(&h, conv, plain_body()).await, "b", "fails over");
    assert_eq!(
        send(&h, conv, plain_body()).await,
        "b",
        "stays while a is out"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        send(&h, conv, plain_body()).await,
        "a",
        "back to the better home"
    );
    h.stop().await;
}

#[tokio::test]
async fn the_session_can_come_from_metadata_or_sluices_own_header() {
    let h = Harness::start(&[api("a", "sk-a"), api("b", "sk-b"), api("c", "sk-c")]).await;
    let by_metadata = send(&h, None, stream_body(Some("meta-session"))).await;
    for _ in 0..4 {
        let _ = send(&h, None, plain_body()).await;
        assert_eq!(
            send(&h, None, stream_body(Some("meta-session"))).await,
            by_metadata
        );
    }
    let terminal = Some(("x-sluice-session", "terminal-7"));
    let by_header = send(&h, terminal, plain_body()).await;
    for _ in 0..4 {
        let _ = send(&h, None, plain_body()).await;
        // sluice's header wins over the body's session.
        assert_eq!(
            send(&h, terminal, stream_body(Some("meta-session"))).await,
            by_header
        );
    }
    assert_eq!(h.status().await["totals"]["conversations"], 2);
    h.stop().await;
}
