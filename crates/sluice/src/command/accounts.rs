//! `sluice accounts …`: list and manage the pool's accounts.
//!
//! Every command works on the store in the data directory, whether or not sluice is running;
//! a running sluice notices the change within a second and applies it without a restart.
//! Accounts the config file declares are listed too but changed in the file. Removing an
//! account from a running sluice is carried out by that sluice, which refuses while the
//! account has requests in flight.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail};
use serde::Serialize;
use serde_json::Value;
use sluice_config::{Credential, Secret};
use sluice_store::{
    AccountChange, NewAccount, Origin, Profile, Removal, Store, StoredAccount, StoredCredential,
};

use super::ConfigArg;
use super::local::{Local, base_url, now_ms, read_secret, relative, small_runtime};

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    list: ListArgs,
}

#[derive(clap::Args)]
struct ListArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Also show token expiry, last refresh and why an account needs a login.
    #[arg(long, short = 'v')]
    verbose: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// The providers whose API keys `accounts add-key` takes.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum KeyProvider {
    Anthropic,
    Openai,
    Gemini,
}

impl KeyProvider {
    fn name(self) -> &'static str {
        match self {
            KeyProvider::Anthropic => "anthropic",
            KeyProvider::Openai => "openai",
            KeyProvider::Gemini => "gemini",
        }
    }
}

#[derive(clap::Subcommand)]
enum Command {
    /// List the accounts (the default).
    List(ListArgs),
    /// Add an API-key account; the key is read from the terminal or stdin.
    AddKey {
        #[command(flatten)]
        config: ConfigArg,
        name: String,
        /// Whose key: anthropic, openai or gemini (third parties are declared in the config
        /// file, with their base_url).
        #[arg(long, value_enum, default_value = "anthropic")]
        provider: KeyProvider,
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        priority: i32,
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        weight: u32,
        /// Add it disabled.
        #[arg(long)]
        disabled: bool,
    },
    /// Rename an account.
    Rename {
        #[command(flatten)]
        config: ConfigArg,
        from: String,
        to: String,
    },
    /// Let the pool use an account.
    Enable {
        #[command(flatten)]
        config: ConfigArg,
        name: String,
    },
    /// Keep an account (and its credentials) but send it nothing.
    Disable {
        #[command(flatten)]
        config: ConfigArg,
        name: String,
    },
    /// Delete an account and its credentials (refused while it has requests in flight).
    Remove {
        #[command(flatten)]
        config: ConfigArg,
        name: String,
    },
    /// Set an account's priority (lower is preferred).
    Priority {
        #[command(flatten)]
        config: ConfigArg,
        name: String,
        #[arg(allow_negative_numbers = true)]
        priority: i32,
    },
    /// Set an account's weight (relative capacity: Pro 1, Max 5x 5, Max 20x 20).
    Weight {
        #[command(flatten)]
        config: ConfigArg,
        name: String,
        #[arg(value_parser = clap::value_parser!(u32).range(1..))]
        weight: u32,
    },
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        None => list(args.list),
        Some(Command::List(list_args)) => list(list_args),
        Some(Command::AddKey {
            config,
            name,
            provider,
            priority,
            weight,
            disabled,
        }) => {
            let local = Local::open(&config)?;
            sluice_config::check_account_name(&name).map_err(|e| anyhow!("name {e}"))?;
            local.not_declared(&name)?;
            if local.store().account(&name)?.is_some() {
                bail!("an account named {name:?} already exists");
            }
            let key = read_secret(&format!("{} API key for {name}: ", provider.name()))?;
            local.store().add_account(NewAccount {
                name: name.clone(),
                provider: provider.name().to_owned(),
                credential: StoredCredential::ApiKey(Secret::new(key)),
                priority,
                weight,
                enabled: !disabled,
                profile: Profile::default(),
            })?;
            println!("Added API-key account {name:?} ({}).", provider.name());
            applied(&local);
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Rename { config, from, to }) => {
            let local = Local::open(&config)?;
            sluice_config::check_account_name(&to).map_err(|e| anyhow!("new name {e}"))?;
            local.not_declared(&from)?;
            if local.declared(&to).is_some() {
                bail!("the config file already declares an account named {to:?}");
            }
            local.store().rename_account(&from, &to)?;
            println!("Renamed {from:?} to {to:?}.");
            applied(&local);
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Enable { config, name }) => change(
            &config,
            &name,
            AccountChange {
                enabled: Some(true),
                ..AccountChange::default()
            },
            "enabled",
        ),
        Some(Command::Disable { config, name }) => change(
            &config,
            &name,
            AccountChange {
                enabled: Some(false),
                ..AccountChange::default()
            },
            "disabled",
        ),
        Some(Command::Priority {
            config,
            name,
            priority,
        }) => change(
            &config,
            &name,
            AccountChange {
                priority: Some(priority),
                ..AccountChange::default()
            },
            &format!("priority {priority}"),
        ),
        Some(Command::Weight {
            config,
            name,
            weight,
        }) => change(
            &config,
            &name,
            AccountChange {
                weight: Some(weight),
                ..AccountChange::default()
            },
            &format!("weight {weight}"),
        ),
        Some(Command::Remove { config, name }) => remove(&config, &name),
    }
}

fn applied(local: &Local) {
    if let Some(server) = local.running() {
        println!(
            "The running sluice (pid {}) applies it within a second.",
            server.pid
        );
    }
}

fn change(
    config: &ConfigArg,
    name: &str,
    change: AccountChange,
    what: &str,
) -> anyhow::Result<ExitCode> {
    let local = Local::open(config)?;
    local.not_declared(name)?;
    local.store().update_account(name, change)?;
    println!("{name}: {what}.");
    applied(&local);
    Ok(ExitCode::SUCCESS)
}

/// How long to wait for a running sluice to carry out a removal.
const REMOVAL_WAIT: Duration = Duration::from_secs(10);

fn remove(config: &ConfigArg, name: &str) -> anyhow::Result<ExitCode> {
    let local = Local::open(config)?;
    local.not_declared(name)?;
    let store = local.store();
    let account = store
        .account(name)?
        .ok_or_else(|| anyhow!("there is no account named {name:?}"))?;
    let Some(server) = local.running() else {
        store.delete_account(account.id)?;
        println!("Removed {name:?}.");
        return Ok(ExitCode::SUCCESS);
    };
    // The running sluice knows what is in flight: it removes the account or refuses.
    store.request_removal(name)?;
    let deadline = std::time::Instant::now() + REMOVAL_WAIT;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        match store.account(name)? {
            None => {
                println!("Removed {name:?}.");
                return Ok(ExitCode::SUCCESS);
            }
            Some(row) => match row.removal {
                Removal::Refused { in_flight } => {
                    bail!(
                        "not removed: {name:?} has {in_flight} request(s) in flight; try again when it is idle (`sluice accounts disable {name}` stops new ones)"
                    );
                }
                Removal::Requested { .. } | Removal::None => {}
            },
        }
        if std::time::Instant::now() >= deadline {
            bail!(
                "the running sluice (pid {}) has not carried out the removal yet; it will once it gets to it (check `sluice accounts`)",
                server.pid
            );
        }
    }
}

/// One line of `sluice accounts`.
#[derive(Serialize)]
struct Row {
    name: String,
    provider: String,
    kind: &'static str,
    origin: &'static str,
    plan: Option<String>,
    state: String,
    enabled: bool,
    priority: i32,
    weight: u32,
    five_hour: Option<f64>,
    seven_day: Option<f64>,
    expires_at: Option<i64>,
    refreshed_at: Option<i64>,
    needs_relogin: bool,
    relogin_reason: Option<String>,
}

fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let local = Local::open(&args.config)?;
    let stored = local.store().accounts()?;
    let learned = learned_quota(local.store())?;
    let live = live_status(&local);
    let now = now_ms();
    let mut rows = Vec::new();
    for account in &local.config.accounts {
        let row = stored
            .iter()
            .find(|r| r.origin == Origin::Config && r.name == account.name)
            .filter(|_| matches!(account.credential, Credential::OAuth { .. }));
        let (kind, expires_at) = match &account.credential {
            Credential::ApiKey(_) => ("api_key", None),
            Credential::OAuth { expires_at_ms, .. } => (
                "oauth",
                row.and_then(|r| r.oauth()?.expires_at_ms)
                    .or(*expires_at_ms),
            ),
        };
        rows.push(Row {
            name: account.name.clone(),
            provider: account.provider.to_string(),
            kind,
            origin: "config",
            plan: row.and_then(|r| r.profile.plan.clone()),
            state: String::new(),
            enabled: account.enabled,
            priority: account.priority,
            weight: account.weight,
            five_hour: None,
            seven_day: None,
            expires_at,
            refreshed_at: row.and_then(|r| r.refreshed_at_ms),
            needs_relogin: row.is_some_and(|r| r.needs_relogin),
            relogin_reason: row.and_then(|r| r.relogin_reason.clone()),
        });
    }
    for account in stored.iter().filter(|r| r.origin == Origin::Cli) {
        if local.declared(&account.name).is_some() {
            continue;
        }
        rows.push(row_of(account));
    }
    for row in &mut rows {
        let live_account = live.as_ref().and_then(|l| l.get(&row.name));
        row.state = match live_account {
            Some(account) => account["state"].as_str().unwrap_or("-").to_owned(),
            None => offline_state(row, &stored, now),
        };
        // Learned quota is kept by pool (a third party's under the Anthropic pool).
        let pool = row
            .provider
            .parse::<sluice_config::ProviderKind>()
            .map_or_else(|_| row.provider.clone(), |p| p.pool().as_str().to_owned());
        let quota = live_account
            .map(|a| &a["quota"])
            .or_else(|| learned.get(&(pool, row.name.clone())));
        if let Some(quota) = quota {
            row.five_hour = window_use(&quota["session"], now);
            row.seven_day = window_use(&quota["weekly"], now);
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", render(&rows, args.verbose, now));
    match (local.running(), live.is_some()) {
        (Some(server), true) => println!("(states from the running sluice, pid {})", server.pid),
        (Some(server), false) => println!(
            "(sluice pid {} is running but did not answer; states are from the database)",
            server.pid
        ),
        (None, _) => println!("(sluice is not running; states are from the database)"),
    }
    Ok(ExitCode::SUCCESS)
}

fn row_of(account: &StoredAccount) -> Row {
    Row {
        name: account.name.clone(),
        provider: account.provider.clone(),
        kind: account.credential.kind(),
        origin: account.origin.as_str(),
        plan: account.profile.plan.clone(),
        state: String::new(),
        enabled: account.enabled,
        priority: account.priority,
        weight: account.weight,
        five_hour: None,
        seven_day: None,
        expires_at: account.oauth().and_then(|t| t.expires_at_ms),
        refreshed_at: account.refreshed_at_ms,
        needs_relogin: account.needs_relogin,
        relogin_reason: account.relogin_reason.clone(),
    }
}

/// A state from the database alone.
fn offline_state(row: &Row, stored: &[StoredAccount], now: i64) -> String {
    let removing = stored
        .iter()
        .any(|r| r.name == row.name && matches!(r.removal, Removal::Requested { .. }));
    if removing {
        "removing"
    } else if row.needs_relogin {
        "needs_relogin"
    } else if !row.enabled {
        "disabled"
    } else if row.kind == "oauth" && row.expires_at.is_some_and(|at| at <= now) {
        "token_expired"
    } else {
        "ready"
    }
    .to_owned()
}

/// A window's use, unless its reset has passed (then nothing is known).
fn window_use(window: &Value, now: i64) -> Option<f64> {
    let utilization = window["utilization"].as_f64()?;
    match window["resets_at"].as_i64() {
        Some(reset) if reset <= now => None,
        _ => Some(utilization),
    }
}

fn learned_quota(store: &dyn Store) -> anyhow::Result<HashMap<(String, String), Value>> {
    Ok(store
        .quota()?
        .into_iter()
        .filter_map(|r| {
            let quota = serde_json::from_str(&r.quota_json).ok()?;
            Some(((r.provider, r.name), quota))
        })
        .collect())
}

/// The running sluice's view of every account, by name, if it answers.
fn live_status(local: &Local) -> Option<HashMap<String, Value>> {
    let running = local.running()?;
    let base = base_url(&local.config, Some(&running));
    let key = local.config.client_keys.first().cloned();
    let status: Value = small_runtime().ok()?.block_on(async {
        let client = super::local::http_client().ok()?;
        let mut request = client
            .get(format!("{base}/status"))
            .timeout(Duration::from_secs(3));
        if let Some(key) = &key {
            request = request.header("x-api-key", key.expose());
        }
        request.send().await.ok()?.json().await.ok()
    })?;
    Some(
        status["accounts"]
            .as_array()?
            .iter()
            .filter_map(|a| Some((a["name"].as_str()?.to_owned(), a.clone())))
            .collect(),
    )
}

fn percent(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |u| format!("{:.0}%", u * 100.0))
}

fn render(rows: &[Row], verbose: bool, now: i64) -> String {
    let mut out = String::new();
    let header = format!(
        "{:<24} {:<10} {:<8} {:<7} {:<6} {:<15} {:>5} {:>5}",
        "NAME", "PROVIDER", "KIND", "ORIGIN", "PLAN", "STATE", "5H", "7D"
    );
    out.push_str(&header);
    if verbose {
        out.push_str(&format!(
            "  {:<16} {:<16} {}",
            "TOKEN EXPIRES", "REFRESHED", "NOTE"
        ));
    }
    out.push('\n');
    if rows.is_empty() {
        out.push_str("(no accounts: add one with `sluice login [--provider codex|gemini]`, `sluice import claude|codex|gemini` or `sluice accounts add-key NAME`)\n");
    }
    for row in rows {
        out.push_str(&format!(
            "{:<24} {:<10} {:<8} {:<7} {:<6} {:<15} {:>5} {:>5}",
            row.name,
            super::status::provider_column(&row.provider),
            row.kind,
            row.origin,
            row.plan.as_deref().unwrap_or("-"),
            row.state,
            percent(row.five_hour),
            percent(row.seven_day),
        ));
        if verbose {
            let when = |at: Option<i64>| at.map_or_else(|| "-".to_owned(), |at| relative(at, now));
            out.push_str(&format!(
                "  {:<16} {:<16} {}",
                when(row.expires_at),
                when(row.refreshed_at),
                row.relogin_reason.as_deref().unwrap_or(""),
            ));
        }
        out.push('\n');
    }
    out
}
