//! `sluice simulate`: run routing strategies side by side on a simulated pool, with the very
//! same scheduler the proxy runs, on a virtual clock (a simulated week takes seconds).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use sluice_scheduler::{PoolConfig, Strategy};
use sluice_sim::tier::Tier;
use sluice_sim::{AccountPlan, PRESETS, Scenario};

#[derive(clap::Args)]
pub struct Args {
    /// Named workloads to run, comma-separated, or `all` (team, solo-bursty, nearly-exhausted).
    #[arg(
        long,
        value_name = "NAMES",
        default_value = "team",
        conflicts_with = "trace"
    )]
    preset: String,
    /// A JSON-lines trace of conversations (and optionally accounts) to run instead.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// The pool for a trace without `account` lines: tiers, comma-separated.
    #[arg(long, value_name = "TIERS", default_value = "pro,max5,max20")]
    accounts: String,
    /// Seed for the preset workloads.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Strategies to compare, comma-separated (default: all).
    #[arg(long, value_name = "NAMES")]
    strategies: Option<String>,
    /// Print the reports as JSON instead of tables.
    #[arg(long)]
    json: bool,
    /// Also write the (first) scenario as a trace to this file.
    #[arg(long, value_name = "FILE")]
    write_trace: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let strategies = match &args.strategies {
        None => Strategy::ALL.to_vec(),
        Some(list) => list
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.parse::<Strategy>())
            .collect::<Result<Vec<_>, _>>()?,
    };
    if strategies.is_empty() {
        bail!("--strategies names no strategy");
    }
    let scenarios = scenarios(&args)?;
    if let (Some(path), Some(first)) = (&args.write_trace, scenarios.first()) {
        std::fs::write(path, first.to_trace())
            .with_context(|| format!("could not write {}", path.display()))?;
    }
    let config = PoolConfig::default();
    let mut all = Vec::new();
    for scenario in &scenarios {
        let reports = sluice_sim::simulate(scenario, &strategies, &config);
        if !args.json {
            println!(
                "{} — {} accounts ({}), {} conversations, {} requests, {:.0} h (seed {})",
                scenario.name,
                scenario.accounts.len(),
                scenario
                    .accounts
                    .iter()
                    .map(|a| format!("{} {}", a.name, a.tier.as_str()))
                    .collect::<Vec<_>>()
                    .join(", "),
                scenario.conversations.len(),
                scenario.requests(),
                scenario.horizon.as_secs_f64() / 3600.0,
                args.seed,
            );
            println!("{}", sluice_sim::report::table(&reports));
        }
        all.extend(reports);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    }
    Ok(ExitCode::SUCCESS)
}

fn scenarios(args: &Args) -> anyhow::Result<Vec<Scenario>> {
    if let Some(path) = &args.trace {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("could not read {}", path.display()))?;
        let name = path
            .file_stem()
            .map_or("trace".into(), |s| s.to_string_lossy().into_owned());
        let mut scenario = sluice_sim::parse_trace(&text, &name)?;
        if scenario.accounts.is_empty() {
            scenario.accounts = default_accounts(&args.accounts)?;
        }
        if scenario.conversations.is_empty() {
            bail!("{} holds no conversations", path.display());
        }
        return Ok(vec![scenario]);
    }
    let names: Vec<&str> = if args.preset.trim() == "all" {
        PRESETS.to_vec()
    } else {
        args.preset
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    };
    names
        .iter()
        .map(|name| {
            sluice_sim::preset(name, args.seed).with_context(|| {
                format!(
                    "unknown preset {name:?}; accepted values: {}",
                    PRESETS.join(", ")
                )
            })
        })
        .collect()
}

/// Accounts for a trace that declares none: the given tiers, weekly resets spread over the
/// week, nothing used yet.
fn default_accounts(list: &str) -> anyhow::Result<Vec<AccountPlan>> {
    let tiers = list
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.parse::<Tier>().map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if tiers.is_empty() {
        bail!("--accounts names no tier");
    }
    let n = tiers.len() as f64;
    Ok(tiers
        .iter()
        .enumerate()
        .map(|(i, tier)| {
            let reset = 168.0 * (i as f64 + 1.0) / n;
            AccountPlan::new(&format!("{}-{}", tier.as_str(), i + 1), *tier, reset, 0.0)
        })
        .collect())
}
