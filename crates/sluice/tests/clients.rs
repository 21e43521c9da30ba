//! The CLI side of Codex and Gemini, run as the real `sluice` binary against the fakes:
//! `env`/`run` wire each CLI without handing it a credential, `import codex|gemini` takes
//! over the CLIs' own login files, and `login --provider codex` completes through the
//! localhost callback like the Codex CLI's own login.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use sluice_fake::{FakeCodex, FakeGemini};
use sluice_store::Store;
use support::*;

/// The Codex and Gemini fakes, on the Anthropic fake's runtime.
struct Others {
    codex: FakeCodex,
    gemini: FakeGemini,
}

fn others(fake: &Fake) -> Others {
    let _inside = fake.runtime.enter();
    Others {
        codex: FakeCodex::new().unwrap(),
        gemini: FakeGemini::new().unwrap(),
    }
}

/// Point the config's Codex and Gemini endpoints at the fakes.
fn add_endpoints(setup: &Setup, others: &Others, codex_redirect: &str) {
    let codex = &others.codex;
    let gemini = &others.gemini;
    let mut text = std::fs::read_to_string(&setup.config).unwrap();
    text.push_str(&format!(
        "[providers.codex]\nbase_url = \"{}\"\nusage_url = \"{}\"\ntoken_url = \"{}\"\n\
         authorize_url = \"{}\"\nredirect_uri = \"{codex_redirect}\"\n\
         [providers.gemini]\ncode_assist_url = \"{g}\"\napi_url = \"{g}\"\ntoken_url = \"{}\"\n\
         authorize_url = \"{}\"\nuserinfo_url = \"{}\"\n",
        codex.base_url(),
        codex.usage_url(),
        codex.token_url(),
        codex.authorize_url(),
        gemini.token_url(),
        gemini.authorize_url(),
        gemini.userinfo_url(),
        g = gemini.base_url(),
    ));
    std::fs::write(&setup.config, text).unwrap();
}

/// `sluice ARGS --config …` with `HOME` a directory of the test's and no CLI homes set.
fn sluice_at_home(setup: &Setup, home: &Path, args: &[&str]) -> Command {
    let mut command = sluice();
    command
        .args(args)
        .arg("--config")
        .arg(&setup.config)
        .env("HOME", home)
        .env_remove("CODEX_HOME")
        .env_remove("GEMINI_CLI_HOME")
        .env_remove("CLAUDE_CONFIG_DIR");
    command
}

fn output(mut command: Command) -> (bool, String, String) {
    let out = command.stdin(Stdio::null()).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The value `export NAME=…` gives in `sluice env`'s output (unquoted).
fn exported(text: &str, name: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("export {name}=")))
        .map(|v| v.trim_matches('\'').to_owned())
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn env_codex_writes_a_codex_home_with_the_sluice_provider_and_no_credential() {
    let fake = Fake::start();
    let setup = Setup::new(&fake.fake, "client_keys = [\"sk-sluice-CLIENT\"]\n");
    // The user's own Codex home: settings to keep, a login that must not travel.
    let home = setup.dir.path().join("home");
    std::fs::create_dir_all(home.join(".codex")).unwrap();
    std::fs::write(
        home.join(".codex/config.toml"),
        "model = \"gpt-5-codex\"\nmodel_reasoning_effort = \"high\"\n\n[mcp_servers.docs]\ncommand = \"docs-mcp\"\n",
    )
    .unwrap();
    std::fs::write(
        home.join(".codex/auth.json"),
        r#"{"OPENAI_API_KEY":null,"tokens":{"access_token":"users-own-ACCESS","refresh_token":"users-own-REFRESH","account_id":"acct"}}"#,
    )
    .unwrap();

    let (ok, stdout, stderr) = output(sluice_at_home(&setup, &home, &["env", "codex"]));
    assert!(ok, "{stderr}");
    let codex_home = exported(&stdout, "CODEX_HOME").expect(&stdout);
    assert_eq!(
        Path::new(&codex_home),
        setup.data_dir().join("clients/codex")
    );
    assert_eq!(
        exported(&stdout, "SLUICE_API_KEY").as_deref(),
        Some("sk-sluice-CLIENT"),
        "Codex presents sluice's client key: {stdout}"
    );
    let config_path = Path::new(&codex_home).join("config.toml");
    let text = std::fs::read_to_string(&config_path).unwrap();
    let config: toml_edit::DocumentMut = text.parse().unwrap();
    assert_eq!(config["model_provider"].as_str(), Some("sluice"));
    assert_eq!(config["model"].as_str(), Some("gpt-5-codex"), "{text}");
    assert_eq!(
        config["mcp_servers"]["docs"]["command"].as_str(),
        Some("docs-mcp")
    );
    let provider = &config["model_providers"]["sluice"];
    assert_eq!(provider["wire_api"].as_str(), Some("responses"));
    assert_eq!(
        provider["base_url"].as_str(),
        Some("http://127.0.0.1:0/v1"),
        "{text}"
    );
    assert_eq!(provider["env_key"].as_str(), Some("SLUICE_API_KEY"));
    // No credential is copied into sluice's Codex home.
    let mut names: Vec<String> = std::fs::read_dir(&codex_home)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["config.toml"]);
    for text in [&text, &stdout, &stderr] {
        assert!(!text.contains("users-own"), "a credential leaked: {text}");
    }
    #[cfg(unix)]
    assert_eq!(mode(&config_path), 0o600);

    // With sluice running, the address is the live one.
    let server = serve(&setup);
    let (ok, _, stderr) = output(sluice_at_home(&setup, &home, &["env", "codex"]));
    assert!(ok, "{stderr}");
    let text = std::fs::read_to_string(&config_path).unwrap();
    assert!(text.contains(&format!("{}/v1", server.url)), "{text}");
}

#[test]
fn env_gemini_sets_the_endpoint_and_auth_type_of_each_mode() {
    let fake = Fake::start();
    let setup = Setup::new(&fake.fake, "");
    let home = setup.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();

    // No Gemini accounts: Code Assist, which the Google-login accounts serve.
    let (ok, stdout, stderr) = output(sluice_at_home(&setup, &home, &["env", "gemini"]));
    assert!(ok, "{stderr}");
    assert_eq!(
        exported(&stdout, "CODE_ASSIST_ENDPOINT").as_deref(),
        Some("http://127.0.0.1:0")
    );
    assert!(stdout.contains("unset GOOGLE_GEMINI_BASE_URL"), "{stdout}");
    let settings = exported(&stdout, "GEMINI_CLI_SYSTEM_SETTINGS_PATH").expect(&stdout);
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    assert_eq!(value["security"]["auth"]["selectedType"], "oauth-personal");

    // A pool of Gemini API keys: the Gemini API, the CLI presenting a placeholder key.
    let (ok, _, stderr) = setup.run_with_stdin(
        &["accounts", "add-key", "g1", "--provider", "gemini"],
        "AIza-GEMINI-KEY\n",
    );
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = output(sluice_at_home(&setup, &home, &["env", "gemini"]));
    assert!(ok, "{stderr}");
    assert_eq!(
        exported(&stdout, "GOOGLE_GEMINI_BASE_URL").as_deref(),
        Some("http://127.0.0.1:0")
    );
    assert_eq!(
        exported(&stdout, "GEMINI_API_KEY").as_deref(),
        Some("sluice")
    );
    assert!(!stdout.contains("AIza-GEMINI-KEY"), "{stdout}");
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    assert_eq!(value["security"]["auth"]["selectedType"], "gemini-api-key");

    // The mode can be chosen.
    let (ok, stdout, _) = output(sluice_at_home(
        &setup,
        &home,
        &["env", "gemini", "--gemini-mode", "code-assist"],
    ));
    assert!(ok);
    assert!(
        exported(&stdout, "CODE_ASSIST_ENDPOINT").is_some(),
        "{stdout}"
    );
}

#[test]
fn run_codex_starts_the_cli_with_sluices_codex_home() {
    let fake = Fake::start();
    let setup = Setup::new(&fake.fake, "");
    let home = setup.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let server = serve(&setup);
    // A stand-in for Codex that reports what it was given.
    let script = setup.dir.path().join("codex");
    let report = setup.dir.path().join("report");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$CODEX_HOME\" \"$SLUICE_API_KEY\" \"$*\" > {}\nexit 3\n",
            report.display()
        ),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let mut command = sluice_at_home(&setup, &home, &["run", "codex"]);
    command
        .arg("--program")
        .arg(&script)
        .args(["--", "exec", "hello"]);
    let out = command.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = std::fs::read_to_string(&report)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(Path::new(&lines[0]), setup.data_dir().join("clients/codex"));
    assert_eq!(
        lines[1], "sluice",
        "a placeholder key: no client keys are set"
    );
    assert_eq!(lines[2], "exec hello");
    let config = std::fs::read_to_string(Path::new(&lines[0]).join("config.toml")).unwrap();
    assert!(config.contains(&format!("{}/v1", server.url)), "{config}");
}

#[test]
fn import_codex_stores_the_chatgpt_login_named_by_its_id_token() {
    let fake = Fake::start();
    let others = others(&fake);
    let setup = Setup::new(&fake.fake, "");
    add_endpoints(&setup, &others, "http://localhost:1455/auth/callback");
    let now = sluice_fake::epoch_secs(std::time::SystemTime::now());
    let id_token = sluice_fake::id_token("acct-imported", "pro", now);
    let auth = setup.dir.path().join("auth.json");
    std::fs::write(
        &auth,
        serde_json::json!({
            "OPENAI_API_KEY": null,
            "tokens": {
                "id_token": id_token,
                "access_token": "codex-ACCESS-1",
                "refresh_token": "codex-REFRESH-1",
                "account_id": "acct-imported",
            },
            "last_refresh": "2026-01-01T00:00:00Z",
        })
        .to_string(),
    )
    .unwrap();
    let (ok, stdout, stderr) = setup.run(&["import", "codex", "--from", auth.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("refresh token now belongs to sluice"),
        "{stdout}"
    );
    assert!(stdout.contains("sluice run codex"), "{stdout}");
    for text in [&stdout, &stderr] {
        assert!(!text.contains("codex-REFRESH-1"), "a token was printed");
    }
    let row = setup
        .store()
        .account("acct-imported@fake.test")
        .unwrap()
        .expect("named after the id_token's email");
    assert_eq!(row.provider, "codex");
    assert_eq!(row.profile.plan.as_deref(), Some("pro"));
    assert_eq!(
        row.profile.upstream_account.as_deref(),
        Some("acct-imported")
    );
    let tokens = row.oauth().unwrap();
    assert_eq!(tokens.access_token.expose(), "codex-ACCESS-1");
    assert_eq!(
        tokens.refresh_token.as_ref().unwrap().expose(),
        "codex-REFRESH-1"
    );
    let listed = setup.list_json();
    assert_eq!(listed[0]["provider"], "codex");

    // An API-key auth.json is not a login; a broken file says where, never what.
    std::fs::write(&auth, r#"{"OPENAI_API_KEY":"sk-proj-SECRET"}"#).unwrap();
    let (ok, _, stderr) = setup.run(&["import", "codex", "--from", auth.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("--provider openai"), "{stderr}");
    assert!(!stderr.contains("sk-proj-SECRET"), "{stderr}");
    std::fs::write(&auth, r#"{"tokens":{"access_token":"codex-LEAK", "#).unwrap();
    let (ok, _, stderr) = setup.run(&["import", "codex", "--from", auth.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("not a Codex auth.json"), "{stderr}");
    assert!(!stderr.contains("codex-LEAK"), "{stderr}");
    // The default path is $CODEX_HOME/auth.json.
    let home = setup.dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let (ok, _, stderr) = output(sluice_at_home(&setup, &home, &["import", "codex"]));
    assert!(!ok);
    assert!(
        stderr.contains(".codex/auth.json does not exist"),
        "{stderr}"
    );
}

#[test]
fn import_gemini_stores_the_google_login_with_its_code_assist_project() {
    let fake = Fake::start();
    let others = others(&fake);
    others
        .gemini
        .add_code_assist_account("ya29.GEMINI-ACCESS", "proj-imported");
    others
        .gemini
        .set_email("ya29.GEMINI-ACCESS", "g@example.com");
    let setup = Setup::new(&fake.fake, "");
    add_endpoints(&setup, &others, "http://localhost:1455/auth/callback");
    let home = setup.dir.path().join("home");
    std::fs::create_dir_all(home.join(".gemini")).unwrap();
    let expiry = sluice_fake::epoch_secs(std::time::SystemTime::now()) * 1000 + 3_000_000;
    std::fs::write(
        home.join(".gemini/oauth_creds.json"),
        serde_json::json!({
            "access_token": "ya29.GEMINI-ACCESS",
            "refresh_token": "1//GEMINI-REFRESH",
            "scope": "https://www.googleapis.com/auth/cloud-platform",
            "token_type": "Bearer",
            "expiry_date": expiry,
        })
        .to_string(),
    )
    .unwrap();
    let (ok, stdout, stderr) = output(sluice_at_home(&setup, &home, &["import", "gemini"]));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("do not rotate"), "{stdout}");
    assert!(!stdout.contains("GEMINI-REFRESH"), "{stdout}");
    let row = setup
        .store()
        .account("g@example.com")
        .unwrap()
        .expect("named after the userinfo email");
    assert_eq!(row.provider, "gemini");
    assert_eq!(row.profile.project.as_deref(), Some("proj-imported"));
    let tokens = row.oauth().unwrap();
    assert_eq!(tokens.access_token.expose(), "ya29.GEMINI-ACCESS");
    assert_eq!(
        tokens.refresh_token.as_ref().unwrap().expose(),
        "1//GEMINI-REFRESH"
    );
    assert_eq!(tokens.expires_at_ms, Some(expiry as i64));

    // Importing it again renews the same account.
    let (ok, stdout, stderr) = output(sluice_at_home(&setup, &home, &["import", "gemini"]));
    assert!(ok, "{stderr}");
    assert!(stdout.contains("has new tokens"), "{stdout}");
    assert_eq!(setup.store().accounts().unwrap().len(), 1);
}

#[test]
fn login_codex_completes_through_the_localhost_callback() {
    let fake = Fake::start();
    let others = others(&fake);
    others.codex.add_account("acct-login", "unused-access");
    others.codex.set_plan("acct-login", "plus");
    others.codex.set_login_account("acct-login");
    // The Codex client only returns to a fixed localhost port: a free one stands in for 1455.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let setup = Setup::new(&fake.fake, "");
    add_endpoints(
        &setup,
        &others,
        &format!("http://localhost:{port}/auth/callback"),
    );
    let LoginRun {
        ok,
        stdout,
        stderr: seen,
        url,
    } = login(&setup, &fake, &["--provider", "codex"], true);
    assert!(ok, "{seen}");
    assert!(
        url.contains(&format!("localhost%3A{port}%2Fauth%2Fcallback")),
        "{url}"
    );
    assert!(
        stdout.contains("added account \"acct-login@fake.test\" (codex)"),
        "{stdout}"
    );
    assert_eq!(others.codex.logins(), 1);
    let row = setup
        .store()
        .account("acct-login@fake.test")
        .unwrap()
        .unwrap();
    assert_eq!(row.profile.upstream_account.as_deref(), Some("acct-login"));
    assert_eq!(row.profile.plan.as_deref(), Some("plus"));
    let refresh = row.oauth().unwrap().refresh_token.clone().unwrap();
    assert!(others.codex.is_refresh_token_live(refresh.expose()));
    assert!(!stdout.contains(refresh.expose().as_str()));
    assert!(!seen.contains(refresh.expose().as_str()));
}

#[test]
fn login_gemini_stores_the_google_account_with_its_project() {
    let fake = Fake::start();
    let others = others(&fake);
    others
        .gemini
        .add_code_assist_account("ya29.login-seed", "proj-login");
    others
        .gemini
        .set_email("ya29.login-seed", "google@example.com");
    others.gemini.set_login_account("ya29.login-seed");
    let setup = Setup::new(&fake.fake, "");
    add_endpoints(&setup, &others, "http://localhost:1455/auth/callback");
    let LoginRun {
        ok,
        stdout,
        stderr: seen,
        url,
    } = login(&setup, &fake, &["--provider", "gemini"], true);
    assert!(ok, "{seen}");
    assert!(url.contains("127.0.0.1%3A"), "a loopback listener: {url}");
    assert!(
        stdout.contains("added account \"google@example.com\" (gemini)"),
        "{stdout}"
    );
    assert_eq!(others.gemini.logins(), 1);
    let row = setup
        .store()
        .account("google@example.com")
        .unwrap()
        .unwrap();
    assert_eq!(row.provider, "gemini");
    assert_eq!(row.profile.project.as_deref(), Some("proj-login"));
    let refresh = row.oauth().unwrap().refresh_token.clone().unwrap();
    assert!(!stdout.contains(refresh.expose().as_str()));
    assert!(!seen.contains(refresh.expose().as_str()));
}
