//! Reports side by side, as a table for people.

use crate::metrics::Report;

/// A row of the table: its label and how to show one report's value.
type Row = (&'static str, Box<dyn Fn(&Report) -> String>);

/// The reports of one scenario as an aligned text table, one column per strategy.
pub fn table(reports: &[Report]) -> String {
    let pct = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{:.1} %", v * 100.0));
    let rows: Vec<Row> = vec![
        (
            "requests served",
            Box::new(|r| format!("{} / {}", r.served, r.requests)),
        ),
        (
            "served before first refusal",
            Box::new(|r| r.served_before_first_refusal.to_string()),
        ),
        (
            "first refusal at",
            Box::new(|r| {
                r.first_refusal_hours
                    .map_or("never".to_owned(), |h| format!("{h:.1} h"))
            }),
        ),
        (
            "quota used at first refusal",
            Box::new(move |r| pct(r.quota_used_at_first_refusal)),
        ),
        (
            "requests refused",
            Box::new(|r| r.refused_requests.to_string()),
        ),
        (
            "requests queued",
            Box::new(|r| r.queued_requests.to_string()),
        ),
        (
            "total queue wait",
            Box::new(|r| format!("{:.0} s", r.queue_wait_seconds)),
        ),
        (
            "upstream 429s (failed over)",
            Box::new(|r| r.upstream_429s.to_string()),
        ),
        ("conversation moves", Box::new(|r| r.moves.to_string())),
        (
            "conversations moved",
            Box::new(|r| r.conversations_moved.to_string()),
        ),
        (
            "prompt-cache hit share",
            Box::new(move |r| pct(Some(r.cache_hit_share))),
        ),
        (
            "quota spent (M units)",
            Box::new(|r| format!("{:.1}", r.quota_units / 1e6)),
        ),
        (
            "unused at 5h resets",
            Box::new(move |r| pct(r.unused_at_5h_reset)),
        ),
        (
            "unused at weekly resets",
            Box::new(move |r| pct(r.unused_at_weekly_reset)),
        ),
    ];
    let mut cells: Vec<Vec<String>> = Vec::new();
    let mut header = vec![String::new()];
    header.extend(reports.iter().map(|r| r.strategy.clone()));
    cells.push(header);
    for (label, value) in &rows {
        let mut row = vec![(*label).to_owned()];
        row.extend(reports.iter().map(value));
        cells.push(row);
    }
    if let Some(first) = reports.first() {
        for (i, account) in first.accounts.iter().enumerate() {
            let mut row = vec![format!("  served by {}", account.name)];
            row.extend(reports.iter().map(|r| r.accounts[i].served.to_string()));
            cells.push(row);
            let mut row = vec![format!("  unused at {}'s weekly reset", account.name)];
            row.extend(
                reports
                    .iter()
                    .map(|r| pct(r.accounts[i].unused_at_weekly_reset)),
            );
            cells.push(row);
        }
    }
    let columns = cells[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            cells
                .iter()
                .map(|row| row[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for (i, row) in cells.iter().enumerate() {
        for (c, cell) in row.iter().enumerate() {
            let pad = widths[c] - cell.chars().count();
            if c == 0 {
                out.push_str(cell);
                out.push_str(&" ".repeat(pad));
            } else {
                out.push_str("  ");
                out.push_str(&" ".repeat(pad));
                out.push_str(cell);
            }
        }
        out.push('\n');
        if i == 0 {
            out.push_str(&"-".repeat(widths.iter().sum::<usize>() + 2 * (columns - 1)));
            out.push('\n');
        }
    }
    out
}
