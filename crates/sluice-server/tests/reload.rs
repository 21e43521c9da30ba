//! Hot reload: an edited config file is applied while requests and streams are in flight,
//! none of them dropped; a bad edit is refused and the old config keeps serving.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::stream_body;
use common::upkeep::*;
use sluice_fake::{FakeAnthropic, FakeConfig, Reply};

fn accounts_text(entries: &[(&str, &str, u32)]) -> String {
    entries
        .iter()
        .map(|(name, key, weight)| {
            format!("[[accounts]]\nname = \"{name}\"\napi_key = \"{key}\"\nweight = {weight}\n\n")
        })
        .collect()
}

fn names(status: &serde_json::Value) -> Vec<String> {
    let mut names: Vec<String> = status["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["leaving"] == false)
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_reload_under_load_drops_no_request() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeAnthropic::start(FakeConfig::default()).unwrap());
    for key in ["sk-a", "sk-b", "sk-c"] {
        fake.add_account(key);
        // Streams long enough that every reload lands while some are mid-flight.
        fake.set_default(
            key,
            Reply::ok().events(8).event_delay(Duration::from_millis(15)),
        );
    }
    let path = dir.path().join("config.toml");
    let data_dir = dir.path().join("data");
    let write = |accounts: &str| {
        std::fs::write(&path, config_text(&fake, &data_dir, accounts)).unwrap();
    };
    write(&accounts_text(&[("a", "sk-a", 1), ("b", "sk-b", 1)]));
    let h = Arc::new(Upkeep::start_from_file(fake.clone(), &data_dir, &path).await);

    let stop = Arc::new(AtomicBool::new(false));
    let completed = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let workers: Vec<_> = (0..6)
        .map(|worker| {
            let (h, stop, completed, failures) =
                (h.clone(), stop.clone(), completed.clone(), failures.clone());
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let session = format!("w{worker}-{n}");
                    let outcome = async {
                        let response = h
                            .messages(&stream_body(Some(&session)))
                            .send()
                            .await
                            .map_err(|e| format!("send: {e}"))?;
                        let status = response.status();
                        let body = response.text().await.map_err(|e| format!("body: {e}"))?;
                        if status != 200 || !body.contains("event: message_stop") {
                            return Err(format!("{status}: {body}"));
                        }
                        Ok(())
                    }
                    .await;
                    match outcome {
                        Ok(()) => {
                            completed.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(error) => failures.lock().push(error),
                    }
                }
            })
        })
        .collect();

    let edits: [(&str, Vec<&str>); 5] = [
        // A third account joins.
        (
            &accounts_text(&[("a", "sk-a", 1), ("b", "sk-b", 1), ("c", "sk-c", 1)]),
            vec!["a", "b", "c"],
        ),
        // Weights change; "a" leaves while it has streams in flight.
        (
            &accounts_text(&[("b", "sk-b", 3), ("c", "sk-c", 1)]),
            vec!["b", "c"],
        ),
        // "a" comes back, "b" leaves.
        (
            &accounts_text(&[("a", "sk-a", 2), ("c", "sk-c", 1)]),
            vec!["a", "c"],
        ),
        // Renamed in the file: a different account as far as sluice knows.
        (
            &accounts_text(&[("a2", "sk-a", 1), ("c", "sk-c", 1)]),
            vec!["a2", "c"],
        ),
        (
            &accounts_text(&[("a2", "sk-a", 1), ("b", "sk-b", 1), ("c", "sk-c", 5)]),
            vec!["a2", "b", "c"],
        ),
    ];
    for (text, expected) in edits.iter() {
        tokio::time::sleep(Duration::from_millis(150)).await;
        write(text);
        let summary = sluice_server::accounts::reload(&h.state)
            .await
            .expect("a good file reloads");
        assert!(summary.needs_restart.is_empty(), "{summary:?}");
        let status = h.status().await;
        assert_eq!(names(&status), *expected);
    }

    // A mistake in the file: refused with the key and line, and the old config keeps serving.
    tokio::time::sleep(Duration::from_millis(150)).await;
    write(&accounts_text(&[("a2", "sk-a", 0)]));
    let error = sluice_server::accounts::reload(&h.state)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("accounts[0].weight"), "{error}");
    assert!(
        error.contains("config.toml:6:"),
        "names the file and line: {error}"
    );
    assert_eq!(names(&h.status().await), ["a2", "b", "c"]);
    let status = h.status().await;
    let c = status["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "c")
        .unwrap();
    assert_eq!(c["weight"], 5);

    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let failures = failures.lock().clone();
    assert!(failures.is_empty(), "dropped requests: {failures:?}");
    assert!(
        completed.load(Ordering::Relaxed) >= 30,
        "too little load to mean anything"
    );
    // Accounts that left with streams in flight were removed once those ended.
    h.wait_for_status(Duration::from_secs(5), "no draining accounts", |s| {
        s["totals"]["accounts"] == 3
    })
    .await;
}

#[tokio::test]
async fn saving_the_config_file_applies_it_without_a_signal() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeAnthropic::start(FakeConfig::default()).unwrap());
    fake.add_account("sk-a");
    fake.add_account("sk-b");
    let path = dir.path().join("config.toml");
    let data_dir = dir.path().join("data");
    std::fs::write(
        &path,
        config_text(&fake, &data_dir, &accounts_text(&[("a", "sk-a", 1)])),
    )
    .unwrap();
    let h = Upkeep::start_from_file(fake.clone(), &data_dir, &path).await;
    assert_eq!(names(&h.status().await), ["a"]);

    // Written the way editors do: a new file renamed over the old one.
    let temporary = dir.path().join("config.toml.tmp");
    std::fs::write(
        &temporary,
        config_text(
            &fake,
            &data_dir,
            &accounts_text(&[("a", "sk-a", 1), ("b", "sk-b", 4)]),
        ),
    )
    .unwrap();
    std::fs::rename(&temporary, &path).unwrap();
    h.wait_for_status(Duration::from_secs(10), "b to join", |s| {
        names(s) == ["a", "b"]
    })
    .await;

    // A broken save is ignored (and logged); the running config stays.
    std::fs::write(&path, "this is = = not toml").unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(names(&h.status().await), ["a", "b"]);
    let response = h.messages(&stream_body(None)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    h.stop().await;
}
