//! `sluice usage`: what the pool has used, and roughly what it would have cost, from the
//! request log in the store. Works whether or not sluice is running (the database allows a
//! reader beside the writer).

use std::process::ExitCode;

use anyhow::Context;
use sluice_server::observe::usage::{self, UsageBy, UsageSummary};
use sluice_store::{DATABASE_FILE, SqliteStore, Store};

use super::ConfigArg;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    config: ConfigArg,
    /// How far back to look: 90m, 24h, 7d, 2w.
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    since: String,
    /// Group by account, model, provider, client (key identifier), day (UTC) or total.
    #[arg(long, default_value = "account", value_parser = clap::builder::PossibleValuesParser::new(UsageBy::NAMES))]
    by: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Print the price table the estimates use (built-in prices with the config's overrides).
    #[arg(long)]
    prices: bool,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = sluice_config::load(args.config.config.as_deref())?;
    if args.prices {
        print_prices(&config.prices, args.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    let since = usage::parse_since(&args.since).map_err(anyhow::Error::msg)?;
    let by = UsageBy::parse(&args.by).context("unknown grouping")?;
    let database = config.data_dir.join(DATABASE_FILE);
    let rows = if database.exists() {
        let store = SqliteStore::open(&config.data_dir).with_context(|| {
            format!(
                "could not open sluice's database in {}",
                config.data_dir.display()
            )
        })?;
        let since_ms = super::local::now_ms() - since.as_millis() as i64;
        store.usage(&by.query(since_ms))?
    } else {
        Vec::new()
    };
    let summaries = usage::summarize(&rows, by, &config.prices);
    let total = usage::total(&summaries);
    if args.json {
        let document = serde_json::json!({
            "since": args.since,
            "by": args.by,
            "rows": summaries,
            "total": total,
        });
        println!("{}", serde_json::to_string_pretty(&document)?);
        return Ok(ExitCode::SUCCESS);
    }
    if summaries.is_empty() {
        println!(
            "No requests in the last {} (the request log is in {}; `log.requests` turns it on or off).",
            args.since,
            database.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", render(&summaries, &total, &args.by, &args.since));
    Ok(ExitCode::SUCCESS)
}

/// The usage table.
pub fn render(summaries: &[UsageSummary], total: &UsageSummary, by: &str, since: &str) -> String {
    let mut out = format!("Usage over the last {since}, by {by}\n");
    let header = [
        by.to_uppercase(),
        "REQUESTS".into(),
        "FAILED".into(),
        "INPUT".into(),
        "OUTPUT".into(),
        "CACHE WRITE".into(),
        "CACHE READ".into(),
        "AVG LATENCY".into(),
        "EST. COST".into(),
    ];
    let mut lines = vec![header.to_vec()];
    for summary in summaries
        .iter()
        .chain((summaries.len() > 1).then_some(total))
    {
        lines.push(vec![
            summary.key.clone().unwrap_or_else(|| "(none)".to_owned()),
            count(summary.requests),
            count(summary.failed),
            tokens(summary.input_tokens),
            tokens(summary.output_tokens),
            tokens(summary.cache_creation_tokens),
            tokens(summary.cache_read_tokens),
            format!("{:.0} ms", summary.average_latency_ms),
            cost(summary),
        ]);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (n, line) in lines.iter().enumerate() {
        if n > 0 && n == lines.len() - 1 && summaries.len() > 1 {
            let rule: usize = widths.iter().sum::<usize>() + 2 * (widths.len() - 1);
            out.push_str(&"-".repeat(rule));
            out.push('\n');
        }
        let cells: Vec<String> = line
            .iter()
            .enumerate()
            .map(|(i, cell)| {
                if i == 0 {
                    format!("{cell:<width$}", width = widths[i])
                } else {
                    format!("{cell:>width$}", width = widths[i])
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    if total.unpriced_requests > 0 {
        out.push_str(&format!(
            "{} request(s) used models without a price (add them under [prices] in the config).\n",
            total.unpriced_requests
        ));
    }
    out.push_str(
        "Costs are estimates at list prices (sluice usage --prices); subscriptions are not billed per token.\n",
    );
    out
}

fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn tokens(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}k", n as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{:.2}G", n as f64 / 1e9),
    }
}

fn cost(summary: &UsageSummary) -> String {
    let dollars = if summary.cost_usd >= 100.0 {
        format!("${:.0}", summary.cost_usd)
    } else {
        format!("${:.2}", summary.cost_usd)
    };
    if summary.unpriced_requests > 0 {
        format!("{dollars}+?")
    } else {
        dollars
    }
}

fn print_prices(prices: &sluice_config::PriceTable, json: bool) -> anyhow::Result<()> {
    let mut families: Vec<_> = prices.families().collect();
    families.sort_by(|a, b| a.0.cmp(b.0));
    if json {
        let document: serde_json::Map<String, serde_json::Value> = families
            .iter()
            .map(|(family, price)| Ok(((*family).to_owned(), serde_json::to_value(price)?)))
            .collect::<Result<_, serde_json::Error>>()?;
        println!("{}", serde_json::to_string_pretty(&document)?);
        return Ok(());
    }
    println!(
        "{:<24} {:>8} {:>8} {:>12} {:>11}   US$ per million tokens; the longest matching prefix wins",
        "MODEL PREFIX", "INPUT", "OUTPUT", "CACHE WRITE", "CACHE READ"
    );
    for (family, price) in families {
        let overridden = if prices
            .overrides()
            .keys()
            .any(|k| k.eq_ignore_ascii_case(family))
        {
            "  (config)"
        } else {
            ""
        };
        println!(
            "{family:<24} {:>8.3} {:>8.3} {:>12.3} {:>11.3}{overridden}",
            price.input, price.output, price.cache_write, price.cache_read
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_at_a_glance() {
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(count(999), "999");
        assert_eq!(tokens(12_345), "12.3k");
        assert_eq!(tokens(3_400_000), "3.4M");
    }

    #[test]
    fn the_table_has_a_total_line_for_several_groups() {
        let rows = vec![
            UsageSummary {
                key: Some("max".into()),
                requests: 1200,
                input_tokens: 2_000_000,
                cost_usd: 6.0,
                average_latency_ms: 900.0,
                ..UsageSummary::default()
            },
            UsageSummary {
                key: None,
                requests: 3,
                failed: 3,
                unpriced_requests: 1,
                ..UsageSummary::default()
            },
        ];
        let total = usage::total(&rows);
        let table = render(&rows, &total, "account", "24h");
        assert!(table.contains("max"), "{table}");
        assert!(table.contains("(none)"));
        assert!(table.contains("1,203"), "{table}");
        assert!(table.contains("$6.00+?"), "{table}");
        assert!(table.contains("1 request(s) used models without a price"));
    }
}
