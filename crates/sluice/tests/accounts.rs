//! The account commands as a user runs them: the real `sluice` binary, a real database in a
//! temporary data directory, the fake Anthropic API (and its OAuth side) in this process.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use sluice_fake::{OAuthUser, Reply};
use sluice_store::{Origin, SqliteStore, Store, StoredCredential};
use support::*;

#[test]
fn each_account_command_round_trips_through_the_database() {
    let fake = Fake::start();
    let setup = Setup::new(
        &fake.fake,
        "[[accounts]]\nname = \"declared\"\napi_key = \"sk-ant-api03-DECLARED\"\n",
    );

    let (ok, stdout, stderr) =
        setup.run_with_stdin(&["accounts", "add-key", "work"], "sk-ant-api03-WORKKEY\n");
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("Added API-key account \"work\""),
        "{stdout}"
    );
    let stored = setup.store().account("work").unwrap().unwrap();
    match &stored.credential {
        StoredCredential::ApiKey(key) => assert_eq!(key.expose(), "sk-ant-api03-WORKKEY"),
        other => panic!("{other:?}"),
    }
    assert_eq!(stored.origin, Origin::Cli);

    for (args, check) in [
        (vec!["accounts", "priority", "work", "-2"], "priority"),
        (vec!["accounts", "weight", "work", "5"], "weight"),
        (vec!["accounts", "disable", "work"], "disabled"),
    ] {
        let (ok, _, stderr) = setup.run(&args);
        assert!(ok, "{args:?}: {stderr}");
        let _ = check;
    }
    let row = setup.store().account("work").unwrap().unwrap();
    assert_eq!((row.priority, row.weight, row.enabled), (-2, 5, false));
    let (ok, _, stderr) = setup.run(&["accounts", "enable", "work"]);
    assert!(ok, "{stderr}");
    assert!(setup.store().account("work").unwrap().unwrap().enabled);

    let (ok, _, stderr) = setup.run(&["accounts", "rename", "work", "job"]);
    assert!(ok, "{stderr}");
    assert!(setup.store().account("work").unwrap().is_none());
    assert!(setup.store().account("job").unwrap().is_some());

    // The listing shows the config's accounts and the store's, and never a key.
    let (ok, stdout, _) = setup.run(&["accounts", "-v"]);
    assert!(ok);
    assert!(stdout.contains("declared"), "{stdout}");
    assert!(stdout.contains("job"), "{stdout}");
    assert!(stdout.contains("not running"), "{stdout}");
    assert!(
        !stdout.contains("WORKKEY") && !stdout.contains("DECLARED"),
        "{stdout}"
    );
    let listed = setup.list_json();
    let names: Vec<_> = listed.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["declared", "job"]);
    assert_eq!(listed[1]["weight"], 5);
    assert_eq!(listed[1]["state"], "ready");

    // Config accounts are changed in the file; names stay unique; bad input loses nothing.
    let (ok, _, stderr) = setup.run(&["accounts", "disable", "declared"]);
    assert!(!ok);
    assert!(stderr.contains("declared in"), "{stderr}");
    let (ok, _, stderr) = setup.run_with_stdin(&["accounts", "add-key", "declared"], "k\n");
    assert!(!ok, "{stderr}");
    let (ok, _, stderr) = setup.run_with_stdin(&["accounts", "add-key", "job"], "k\n");
    assert!(!ok);
    assert!(stderr.contains("already exists"), "{stderr}");
    let (ok, _, stderr) = setup.run_with_stdin(&["accounts", "add-key", "bad name"], "k\n");
    assert!(!ok);
    assert!(stderr.contains("names may use only"), "{stderr}");
    let (ok, _, stderr) = setup.run_with_stdin(&["accounts", "add-key", "empty"], "\n");
    assert!(!ok);
    assert!(stderr.contains("nothing was entered"), "{stderr}");
    let (ok, _, stderr) = setup.run(&["accounts", "weight", "job", "0"]);
    assert!(!ok, "{stderr}");
    assert_eq!(setup.store().accounts().unwrap().len(), 1);

    let (ok, _, stderr) = setup.run(&["accounts", "remove", "job"]);
    assert!(ok, "{stderr}");
    assert!(setup.store().accounts().unwrap().is_empty());
    let (ok, _, stderr) = setup.run(&["accounts", "remove", "job"]);
    assert!(!ok);
    assert!(stderr.contains("no account named"), "{stderr}");
}

#[cfg(unix)]
#[test]
fn the_database_is_private_and_secrets_never_reach_argv() {
    use std::os::unix::fs::PermissionsExt;
    let fake = Fake::start();
    let setup = Setup::new(&fake.fake, "");
    let (ok, _, stderr) = setup.run_with_stdin(&["accounts", "add-key", "k"], "sk-ant-api03-K\n");
    assert!(ok, "{stderr}");
    let mode = std::fs::metadata(setup.data_dir().join("sluice.db"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // There is no way to give the key on the command line.
    let (ok, _, stderr) = setup.run(&["accounts", "add-key", "k2", "sk-ant-api03-K2"]);
    assert!(!ok);
    assert!(stderr.contains("unexpected argument"), "{stderr}");
}

/// Drive `sluice login`, answering the login page like a browser would, and wait for it.
#[test]
fn login_with_a_pasted_code_stores_the_account_and_a_second_login_renews_it() {
    let fake = Fake::start();
    fake.fake.add_oauth_user(OAuthUser::max("max@example.com"));
    let setup = Setup::new(&fake.fake, "");
    let LoginRun {
        ok, stdout, stderr, ..
    } = login(&setup, &fake, &["--no-browser"], false);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("added account \"max@example.com\""),
        "{stdout}"
    );
    let first = setup.store().account("max@example.com").unwrap().unwrap();
    assert_eq!(first.profile.plan.as_deref(), Some("max"));
    assert_eq!(first.weight, 20, "a Max 20x subscription weighs 20");
    let refresh = first.oauth().unwrap().refresh_token.clone().unwrap();
    assert!(fake.fake.is_refresh_token_live(refresh.expose()));

    let LoginRun {
        ok, stdout, stderr, ..
    } = login(&setup, &fake, &["--no-browser"], false);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("has new tokens"), "{stdout}");
    let accounts = setup.store().accounts().unwrap();
    assert_eq!(accounts.len(), 1, "renewed, not duplicated");
    assert!(accounts[0].generation > first.generation);
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains(refresh.expose().as_str()),
            "a token was printed"
        );
    }
}

#[test]
fn login_through_the_browser_redirect_with_a_chosen_name() {
    let fake = Fake::start();
    fake.fake.add_oauth_user(OAuthUser::pro("pro@example.com"));
    let setup = Setup::new(&fake.fake, "");
    let LoginRun {
        ok, stdout, stderr, ..
    } = login(&setup, &fake, &["--name", "pro-one"], true);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("added account \"pro-one\""), "{stdout}");
    let listed = setup.list_json();
    assert_eq!(listed[0]["name"], "pro-one");
    assert_eq!(listed[0]["plan"], "pro");
    assert_eq!(listed[0]["kind"], "oauth");
    assert!(listed[0]["expires_at"].as_i64().unwrap() > 0);
}

#[test]
fn importing_claude_codes_login_says_who_owns_the_refresh_token_now() {
    let fake = Fake::start();
    fake.fake.add_oauth_user(OAuthUser::max("cc@example.com"));
    let tokens = fake.fake.issue_tokens("cc@example.com");
    let setup = Setup::new(&fake.fake, "");
    let credentials = setup.dir.path().join("credentials.json");
    std::fs::write(
        &credentials,
        serde_json::json!({"claudeAiOauth": {
            "accessToken": tokens.access_token,
            "refreshToken": tokens.refresh_token,
            "expiresAt": tokens.expires_at_ms,
            "scopes": ["user:inference", "user:profile"],
            "subscriptionType": "max",
        }})
        .to_string(),
    )
    .unwrap();
    let (ok, stdout, stderr) =
        setup.run(&["import", "claude", "--from", credentials.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("refresh token now belongs to sluice"),
        "{stdout}"
    );
    assert!(stdout.contains("sluice run"), "{stdout}");
    let row = setup.store().account("cc@example.com").unwrap().unwrap();
    let stored = row.oauth().unwrap();
    assert_eq!(stored.access_token.expose(), &tokens.access_token);
    assert_eq!(stored.expires_at_ms, Some(tokens.expires_at_ms));

    let (ok, _, stderr) = setup.run(&["import", "claude", "--from", "/nonexistent/creds.json"]);
    assert!(!ok);
    assert!(stderr.contains("does not exist"), "{stderr}");
    std::fs::write(&credentials, "{\"claudeAiOauth\": {\"accessToken\": 5}}").unwrap();
    let (ok, _, stderr) = setup.run(&["import", "claude", "--from", credentials.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stderr.contains("not a Claude Code credentials file"),
        "{stderr}"
    );
}

#[test]
fn a_running_sluice_applies_cli_changes_and_refuses_to_remove_a_busy_account() {
    let fake = Fake::start();
    fake.fake.add_account("sk-ant-api03-ONE");
    fake.fake.add_account("sk-ant-api03-TWO");
    let setup = Setup::new(&fake.fake, "");
    let server = serve(&setup);
    let url = server.url.clone();

    let (ok, stdout, stderr) =
        setup.run_with_stdin(&["accounts", "add-key", "one"], "sk-ant-api03-ONE\n");
    assert!(ok, "{stderr}");
    assert!(stdout.contains("applies it within a second"), "{stdout}");
    fake.block_on(wait_for_status(&url, "one joins", |s| {
        account(s, "one").is_some()
    }));
    let (status_code, served_by, _) = fake.block_on(post(&url, false));
    assert_eq!((status_code, served_by.as_str()), (200, "one"));

    let (ok, _, stderr) = setup.run(&["accounts", "disable", "one"]);
    assert!(ok, "{stderr}");
    fake.block_on(wait_for_status(&url, "one disabled", |s| {
        account(s, "one").is_some_and(|a| a["state"] == "disabled")
    }));
    let (ok, _, _) = setup.run(&["accounts", "enable", "one"]);
    assert!(ok);
    let (ok, _, _) = setup.run(&["accounts", "rename", "one", "uno"]);
    assert!(ok);
    fake.block_on(wait_for_status(&url, "renamed", |s| {
        account(s, "uno").is_some_and(|a| a["state"] == "available" && a["completed"] == 1)
    }));

    // A slow stream keeps "uno" busy while the CLI asks to remove it.
    fake.fake.set_default(
        "sk-ant-api03-ONE",
        Reply::ok()
            .events(60)
            .event_delay(Duration::from_millis(100)),
    );
    let streaming = {
        let url = url.clone();
        fake.runtime.spawn(async move { post(&url, true).await })
    };
    fake.block_on(wait_for_status(&url, "a request in flight", |s| {
        account(s, "uno").is_some_and(|a| a["in_flight"] == 1)
    }));
    let (ok, _, stderr) = setup.run(&["accounts", "remove", "uno"]);
    assert!(!ok, "removed while busy");
    assert!(stderr.contains("in flight"), "{stderr}");
    let (code, served_by, body) = fake.block_on(streaming).unwrap();
    assert_eq!((code, served_by.as_str()), (200, "uno"));
    assert!(
        body.contains("message_stop"),
        "the stream finished untouched"
    );
    let (ok, stdout, stderr) = setup.run(&["accounts", "remove", "uno"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("Removed"), "{stdout}");
    fake.block_on(wait_for_status(&url, "uno gone", |s| {
        account(s, "uno").is_none()
    }));
    assert!(setup.store().accounts().unwrap().is_empty());

    // The listing asks the running sluice for live states.
    let (ok, _, _) = setup.run_with_stdin(&["accounts", "add-key", "two"], "sk-ant-api03-TWO\n");
    assert!(ok);
    fake.block_on(wait_for_status(&url, "two joins", |s| {
        account(s, "two").is_some()
    }));
    let (ok, stdout, _) = setup.run(&["accounts"]);
    assert!(ok);
    assert!(stdout.contains("available"), "{stdout}");
    assert!(stdout.contains("from the running sluice"), "{stdout}");
}

#[cfg(unix)]
#[test]
fn a_second_sluice_on_the_same_data_directory_is_refused() {
    let fake = Fake::start();
    let setup = Setup::new(&fake.fake, "");
    let _first = serve(&setup);
    let out = sluice()
        .args(["serve", "--config"])
        .arg(&setup.config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already serving"), "{stderr}");
}

/// The stored refresh token of `name`, read the way a restarted sluice reads it.
fn stored_refresh(data_dir: &Path, name: &str) -> String {
    SqliteStore::open(data_dir)
        .unwrap()
        .account(name)
        .unwrap()
        .unwrap()
        .oauth()
        .unwrap()
        .refresh_token
        .as_ref()
        .unwrap()
        .expose()
        .clone()
}

#[cfg(unix)]
#[test]
fn killing_sluice_the_moment_a_refreshed_token_is_used_loses_nothing() {
    let fake = Fake::start();
    fake.fake.add_oauth_user(OAuthUser::max("max@example.com"));
    let first = fake.fake.issue_tokens("max@example.com");
    let setup = Setup::new(
        &fake.fake,
        &format!(
            "[[accounts]]\nname = \"max\"\naccess_token = \"{}\"\nrefresh_token = \"{}\"\nexpires_at = {}\n",
            first.access_token,
            first.refresh_token,
            // Expired: the first request must refresh.
            first.expires_at_ms - 24 * 60 * 60 * 1000,
        ),
    );
    let mut seen_tokens = vec![first.access_token.clone()];
    let mut logs = String::new();
    for round in 0..3 {
        let mut server = serve(&setup);
        let url = server.url.clone();
        // Send a request; the moment the upstream sees a token it has not seen from sluice
        // before (the refreshed one, in use), kill sluice with SIGKILL: no shutdown, no flush.
        let request = {
            let url = url.clone();
            // Its connection dies with sluice; only the upstream's view matters here.
            fake.runtime.spawn(async move {
                let _ = client()
                    .post(format!("{url}/v1/messages"))
                    .header("content-type", "application/json")
                    .body(r#"{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#)
                    .send()
                    .await;
            })
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        let new_token = loop {
            let fresh = fake.fake.requests().into_iter().find_map(|r| {
                let on_messages = r.path_only() == "/v1/messages";
                let credential = r.credential?;
                (on_messages && !seen_tokens.contains(&credential)).then_some(credential)
            });
            if let Some(token) = fresh {
                break token;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: no refreshed token was used"
            );
            std::thread::sleep(Duration::from_micros(200));
        };
        server.kill();
        let _ = fake.block_on(request);
        seen_tokens.push(new_token);
        logs.push_str(&server.log.lock());

        // What the next start will read: a refresh token the token server still honours.
        let stored = stored_refresh(&setup.data_dir(), "max");
        assert!(
            fake.fake.is_refresh_token_live(&stored),
            "round {round}: the stored refresh token is dead: the rotation was lost"
        );
        // Let the stored access token "expire" so the next round must refresh again.
        let store = setup.store();
        let row = store.account("max").unwrap().unwrap();
        let mut tokens = row.oauth().unwrap().clone();
        tokens.expires_at_ms = Some(0);
        store
            .save_refreshed(row.id, row.generation, &tokens)
            .unwrap();
    }
    // A normal start after all that: the account works, nothing was ever presented twice.
    let server = serve(&setup);
    let (code, served_by, _) = fake.block_on(post(&server.url, false));
    assert_eq!((code, served_by.as_str()), (200, "max"));
    let counts = fake.fake.oauth_counts();
    assert_eq!(counts.reuses, 0, "{counts:?}");
    assert_eq!(counts.refreshes, 4, "{counts:?}");
    let status = fake.block_on(status(&server.url));
    assert_eq!(
        account(&status, "max").unwrap()["credential"]["needs_relogin"],
        false
    );
    logs.push_str(&server.log.lock());
    // No token in any log line, at debug level, across every run.
    for token in &seen_tokens {
        assert!(!logs.contains(token.as_str()), "an access token was logged");
    }
    assert!(
        !logs.contains(&first.refresh_token),
        "a refresh token was logged"
    );
    assert!(
        !logs.contains("sk-ant-ort01"),
        "a refresh token was logged:\n{logs}"
    );
    assert!(logs.contains("access token refreshed"), "{logs}");
}

#[test]
fn env_and_run_point_claude_code_at_sluice() {
    let fake = Fake::start();
    let setup = Setup::new(&fake.fake, "client_keys = [\"sk-sluice-CLIENT\"]\n");
    let (ok, stdout, stderr) = setup.run(&["env"]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("export ANTHROPIC_BASE_URL=http://127.0.0.1:0"),
        "{stdout}"
    );
    assert!(
        stdout.contains("export ANTHROPIC_AUTH_TOKEN=sk-sluice-CLIENT"),
        "{stdout}"
    );

    let server = serve(&setup);
    let (ok, stdout, _) = setup.run(&["env", "--session"]);
    assert!(ok);
    assert!(
        stdout.contains(&format!("ANTHROPIC_BASE_URL={}", server.url)),
        "{stdout}"
    );
    assert!(stdout.contains("x-sluice-session: "), "{stdout}");

    // A stand-in for Claude Code that reports what it was given.
    let script = setup.dir.path().join("claude");
    let report = setup.dir.path().join("report");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$ANTHROPIC_BASE_URL\" \"$ANTHROPIC_CUSTOM_HEADERS\" \"$ANTHROPIC_AUTH_TOKEN\" \"${{ANTHROPIC_API_KEY:-none}}\" \"$*\" > {}\nexit 7\n",
            report.display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = sluice()
        .args(["run", "--config"])
        .arg(&setup.config)
        .arg("--claude")
        .arg(&script)
        .args(["--", "--model", "opus"])
        .env("ANTHROPIC_API_KEY", "sk-ant-users-own")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = std::fs::read_to_string(&report)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(lines[0], server.url);
    assert!(lines[1].starts_with("x-sluice-session: "), "{lines:?}");
    assert_eq!(
        lines[1].len(),
        "x-sluice-session: ".len() + 36,
        "a UUID: {lines:?}"
    );
    assert_eq!(lines[2], "sk-sluice-CLIENT");
    assert_eq!(lines[3], "none", "the user's own key is not passed on");
    assert_eq!(lines[4], "--model opus");

    drop(server);
    let out = sluice()
        .args(["run", "--config"])
        .arg(&setup.config)
        .arg("--claude")
        .arg(&script)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not answering"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(unix)]
#[test]
fn reload_checks_the_file_first_and_a_running_sluice_applies_it() {
    let fake = Fake::start();
    fake.fake.add_account("sk-ant-api03-A");
    fake.fake.add_account("sk-ant-api03-B");
    let setup = Setup::new(
        &fake.fake,
        "[[accounts]]\nname = \"a\"\napi_key = \"sk-ant-api03-A\"\n",
    );
    let server = serve(&setup);
    let original = std::fs::read_to_string(&setup.config).unwrap();

    // A mistake is reported by `sluice reload` itself and never reaches the server.
    std::fs::write(
        &setup.config,
        original.replace("name = \"a\"", "name = \"a b\""),
    )
    .unwrap();
    let (ok, _, stderr) = setup.run(&["reload"]);
    assert!(!ok);
    assert!(stderr.contains("accounts[0].name"), "{stderr}");
    assert!(
        stderr.contains("keeps its current configuration"),
        "{stderr}"
    );

    let with_b = original.replace(
        "[[accounts]]",
        "[[accounts]]\nname = \"b\"\napi_key = \"sk-ant-api03-B\"\n\n[[accounts]]",
    );
    std::fs::write(&setup.config, &with_b).unwrap();
    let (ok, stdout, stderr) = setup.run(&["reload"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("Asked sluice"), "{stdout}");
    fake.block_on(wait_for_status(&server.url, "b joins", |s| {
        account(s, "b").is_some() && account(s, "a").is_some()
    }));
}
