//! Drawing a [`View`] and the [`Ui`]'s mode into a frame: header, accounts, recent requests,
//! log, key help, and the menus on top.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, List, ListItem, ListState, Paragraph, Row, Table, Wrap,
};

use crate::ui::{ACCOUNT_ACTIONS, InputKind, Mode, Ui};
use crate::view::{AccountRow, RequestRow, View, Window};

const BAR: usize = 10;

/// Draw the whole screen.
pub fn draw(frame: &mut Frame<'_>, view: &View, ui: &Ui) {
    let area = frame.area();
    let accounts_height = (view.accounts.len() as u16 + 3).min(area.height / 2).max(4);
    let [header, accounts, requests, log, footer] = Layout::vertical([
        Constraint::Length(3),
        Constraint::Length(accounts_height),
        Constraint::Min(4),
        Constraint::Min(4),
        Constraint::Length(1),
    ])
    .areas(area);
    draw_header(frame, header, view, ui);
    let selected = match &ui.mode {
        Mode::Accounts { selected } => Some(*selected),
        Mode::Actions { account, .. } | Mode::Input { account, .. } => {
            view.accounts.iter().position(|a| &a.name == account)
        }
        _ => None,
    };
    draw_accounts(frame, accounts, view, selected);
    draw_requests(frame, requests, view);
    draw_log(frame, log, view);
    draw_footer(frame, footer, ui);
    draw_overlay(frame, area, view, ui);
}

fn draw_header(frame: &mut Frame<'_>, area: Rect, view: &View, ui: &Ui) {
    let dim = Style::new().fg(Color::DarkGray);
    let mut first = vec![
        Span::styled(
            " sluice ",
            Style::new().add_modifier(Modifier::BOLD).fg(Color::Cyan),
        ),
        Span::styled(format!("{}  ", view.version), dim),
        Span::raw(format!("http://{}", view.listen)),
        Span::styled("  ·  routing ", dim),
        Span::styled(
            view.strategy.clone(),
            Style::new().add_modifier(Modifier::BOLD),
        ),
    ];
    if let Some(preferred) = &view.preferred_account {
        first.push(Span::styled(format!(" (prefers {preferred})"), dim));
    }
    first.push(Span::styled(
        format!(
            "  ·  {}/{} accounts available",
            view.available,
            view.accounts.len()
        ),
        dim,
    ));
    if view.breaker_open {
        first.push(Span::styled(
            "  ·  upstream breaker open",
            Style::new().fg(Color::Red),
        ));
    }
    let log = match view.request_log {
        Some((written, 0)) => format!("{} rows", count(written)),
        Some((written, dropped)) => format!("{} rows, {} dropped", count(written), count(dropped)),
        None => "off".to_owned(),
    };
    let second = vec![
        Span::raw(format!(" {} req/min", count(view.requests_per_minute))),
        Span::styled(format!(" ({} failed)", view.failed_per_minute), dim),
        Span::raw(format!("  {} tok/min", count(view.tokens_per_minute))),
        Span::styled("  ·  in flight ", dim),
        Span::raw(view.in_flight.to_string()),
        Span::styled("  ·  queue ", dim),
        Span::styled(
            view.queued.to_string(),
            if view.queued > 0 {
                Style::new().fg(Color::Yellow)
            } else {
                Style::new()
            },
        ),
        Span::styled(format!("  ·  request log {log}"), dim),
    ];
    let third = if view.draining || ui.mode == Mode::Quitting {
        Line::from(Span::styled(
            format!(
                " draining: {} request(s) in flight; sluice exits when they finish",
                view.in_flight
            ),
            Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
        ))
    } else if let Some(message) = &ui.message {
        Line::from(Span::styled(
            format!(" {}", message.text),
            if message.error {
                Style::new().fg(Color::Red)
            } else {
                Style::new().fg(Color::Green)
            },
        ))
    } else {
        Line::default()
    };
    frame.render_widget(
        Paragraph::new(vec![Line::from(first), Line::from(second), third]),
        area,
    );
}

fn draw_accounts(frame: &mut Frame<'_>, area: Rect, view: &View, selected: Option<usize>) {
    let header = Row::new(
        [
            "  ACCOUNT",
            "PROVIDER",
            "PLAN",
            "STATE",
            "5H",
            "7D",
            "INFL",
            "15M",
            "1H",
            "LAST ERROR",
        ]
        .map(|h| Cell::from(h).style(Style::new().fg(Color::DarkGray))),
    );
    let rows = view.accounts.iter().enumerate().map(|(i, account)| {
        let mut row = account_row(account, view.now_ms, selected == Some(i));
        if selected == Some(i) {
            row = row.style(Style::new().add_modifier(Modifier::REVERSED));
        } else if !account.enabled || account.leaving {
            row = row.style(Style::new().fg(Color::DarkGray));
        }
        row
    });
    let table = Table::new(
        rows,
        [
            Constraint::Length(20),
            Constraint::Length(9),
            Constraint::Length(7),
            Constraint::Length(18),
            Constraint::Length(BAR as u16 + 11),
            Constraint::Length(BAR as u16 + 11),
            Constraint::Length(4),
            Constraint::Length(4),
            Constraint::Length(5),
            Constraint::Fill(1),
        ],
    )
    .header(header)
    .block(Block::new().borders(Borders::TOP).title(" accounts "));
    frame.render_widget(table, area);
}

fn account_row(account: &AccountRow, now_ms: i64, selected: bool) -> Row<'static> {
    let state_style = match account.state.as_str() {
        "available" => Style::new().fg(Color::Green),
        "disabled" => Style::new().fg(Color::DarkGray),
        "cooling_down" | "over_threshold" | "at_capacity" => Style::new().fg(Color::Yellow),
        _ => Style::new().fg(Color::Red),
    };
    let mut state = if account.leaving {
        "leaving".to_owned()
    } else {
        account.state.replace('_', " ")
    };
    if let Some(until) = account.until {
        state.push(' ');
        state.push_str(&countdown(until - now_ms));
    }
    let marker = if selected { "▶ " } else { "  " };
    Row::new(vec![
        Cell::from(format!("{marker}{}", account.name)),
        Cell::from(account.provider.clone()),
        Cell::from(account.plan.clone()),
        Cell::from(Span::styled(state, state_style)),
        Cell::from(bar(account.session, now_ms)),
        Cell::from(bar(account.weekly, now_ms)),
        Cell::from(account.in_flight.to_string()),
        Cell::from(account.requests_15m.to_string()),
        Cell::from(account.requests_1h.to_string()),
        Cell::from(Span::styled(
            account.last_error.clone().unwrap_or_default(),
            Style::new().fg(Color::DarkGray),
        )),
    ])
}

/// A usage bar with its percentage and reset countdown: `███████░░░  70% 2h13m`.
fn bar(window: Option<Window>, now_ms: i64) -> Line<'static> {
    let Some(window) = window else {
        return Line::from(Span::styled("-", Style::new().fg(Color::DarkGray)));
    };
    let used = window.used.clamp(0.0, 1.0);
    let filled = (used * BAR as f64).round() as usize;
    let color = if used >= 0.9 {
        Color::Red
    } else if used >= 0.7 {
        Color::Yellow
    } else {
        Color::Green
    };
    let mut spans = vec![
        Span::styled("█".repeat(filled), Style::new().fg(color)),
        Span::styled("░".repeat(BAR - filled), Style::new().fg(Color::DarkGray)),
        Span::raw(format!(" {:>3.0}%", window.used * 100.0)),
    ];
    if let Some(resets) = window.resets_at {
        spans.push(Span::styled(
            format!(" {}", countdown(resets - now_ms)),
            Style::new().fg(Color::DarkGray),
        ));
    }
    Line::from(spans)
}

fn draw_requests(frame: &mut Frame<'_>, area: Rect, view: &View) {
    let shown = area.height.saturating_sub(2) as usize;
    let rows = view
        .requests
        .iter()
        .take(shown)
        .map(|r| request_row(r, view.now_ms));
    let header = Row::new(
        [
            "AGO", "ACCOUNT", "PROVIDER", "MODEL", "STATUS", "LATENCY", "IN / OUT", "NOTE",
        ]
        .map(|h| Cell::from(h).style(Style::new().fg(Color::DarkGray))),
    );
    let table = Table::new(
        rows,
        [
            Constraint::Length(8),
            Constraint::Length(20),
            Constraint::Length(9),
            Constraint::Length(28),
            Constraint::Length(6),
            Constraint::Length(8),
            Constraint::Length(14),
            Constraint::Fill(1),
        ],
    )
    .header(header)
    .block(
        Block::new()
            .borders(Borders::TOP)
            .title(" recent requests "),
    );
    frame.render_widget(table, area);
}

fn request_row(r: &RequestRow, now_ms: i64) -> Row<'static> {
    let status_style = if r.error.is_some() {
        Style::new().fg(Color::Red)
    } else {
        Style::new().fg(Color::Green)
    };
    let mut note = r.error.clone().unwrap_or_default();
    if !r.failovers.is_empty() {
        if !note.is_empty() {
            note.push_str(" · ");
        }
        note.push_str(&format!("after {}", r.failovers.join(", ")));
    }
    Row::new(vec![
        Cell::from(format!("{} ago", countdown(now_ms - r.at_ms))),
        Cell::from(r.account.clone().unwrap_or_else(|| "-".to_owned())),
        Cell::from(r.provider.clone()),
        Cell::from(r.model.clone().unwrap_or_else(|| "-".to_owned())),
        Cell::from(Span::styled(r.status.to_string(), status_style)),
        Cell::from(latency(r.latency_ms)),
        Cell::from(format!(
            "{} / {}",
            count(r.input_tokens),
            count(r.output_tokens)
        )),
        Cell::from(Span::styled(note, Style::new().fg(Color::DarkGray))),
    ])
}

fn draw_log(frame: &mut Frame<'_>, area: Rect, view: &View) {
    let shown = area.height.saturating_sub(1) as usize;
    let start = view.log.len().saturating_sub(shown);
    let lines: Vec<Line<'_>> = view.log[start..]
        .iter()
        .map(|l| Line::from(l.as_str()))
        .collect();
    let log = Paragraph::new(lines).block(Block::new().borders(Borders::TOP).title(" log "));
    frame.render_widget(log, area);
}

fn draw_footer(frame: &mut Frame<'_>, area: Rect, ui: &Ui) {
    let help = match &ui.mode {
        Mode::Main => "a accounts   m routing   q quit",
        Mode::Accounts { .. } => {
            "↑↓/jk select   enter actions   t enable/disable   n rename   p priority   d remove   esc back"
        }
        Mode::Actions { .. } | Mode::Strategies { .. } => "↑↓/jk select   enter choose   esc back",
        Mode::Input { .. } => "type   enter apply   esc cancel",
        Mode::Confirm { .. } => "y yes   n no",
        Mode::Quitting => "draining…",
    };
    frame.render_widget(
        Paragraph::new(Span::styled(
            format!(" {help}"),
            Style::new().fg(Color::DarkGray),
        )),
        area,
    );
}

fn draw_overlay(frame: &mut Frame<'_>, area: Rect, view: &View, ui: &Ui) {
    match &ui.mode {
        Mode::Actions { account, selected } => {
            let enabled = view
                .accounts
                .iter()
                .find(|a| &a.name == account)
                .is_some_and(|a| a.enabled);
            let items: Vec<ListItem<'_>> = ACCOUNT_ACTIONS
                .iter()
                .enumerate()
                .map(|(i, action)| {
                    let label = match i {
                        0 if enabled => "disable",
                        0 => "enable",
                        _ => action,
                    };
                    ListItem::new(format!(" {label}"))
                })
                .collect();
            menu(frame, area, &format!(" {account} "), items, *selected);
        }
        Mode::Strategies { selected } => {
            let items: Vec<ListItem<'_>> = view
                .strategies
                .iter()
                .map(|s| {
                    let mark = if *s == view.strategy { "●" } else { " " };
                    ListItem::new(format!(" {mark} {s}"))
                })
                .collect();
            menu(frame, area, " routing strategy ", items, *selected);
        }
        Mode::Input {
            account,
            kind,
            text,
        } => {
            let title = match kind {
                InputKind::Rename => format!(" rename {account} "),
                InputKind::Priority => format!(" priority of {account} (lower is preferred) "),
            };
            let popup = centered(area, 56, 3);
            frame.render_widget(Clear, popup);
            frame.render_widget(
                Paragraph::new(format!(" {text}▏")).block(Block::bordered().title(title)),
                popup,
            );
        }
        Mode::Confirm { prompt, .. } => {
            let width: u16 = 66;
            let inner = usize::from(width - 3);
            let prompt_lines = prompt.chars().count().div_ceil(inner);
            let popup = centered(area, width, prompt_lines as u16 + 4);
            frame.render_widget(Clear, popup);
            frame.render_widget(
                Paragraph::new(vec![
                    Line::from(format!(" {prompt}")),
                    Line::default(),
                    Line::from(Span::styled(
                        " y / n",
                        Style::new().add_modifier(Modifier::BOLD),
                    )),
                ])
                .wrap(Wrap { trim: false })
                .block(Block::bordered().title(" confirm ")),
                popup,
            );
        }
        _ => {}
    }
}

fn menu(frame: &mut Frame<'_>, area: Rect, title: &str, items: Vec<ListItem<'_>>, selected: usize) {
    let popup = centered(area, 32, items.len() as u16 + 2);
    frame.render_widget(Clear, popup);
    let list = List::new(items)
        .block(Block::bordered().title(title.to_owned()))
        .highlight_style(Style::new().add_modifier(Modifier::REVERSED))
        .highlight_symbol("▶");
    let mut state = ListState::default().with_selected(Some(selected));
    frame.render_stateful_widget(list, popup, &mut state);
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 3,
        width,
        height,
    }
}

/// `4d02h`, `2h13m`, `47m`, `4m05s`, `45s`.
pub fn countdown(ms: i64) -> String {
    let s = (ms.max(0) + 999) / 1000;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    if d > 0 {
        format!("{d}d{h:02}h")
    } else if h > 0 {
        format!("{h}h{m:02}m")
    } else if m >= 10 {
        format!("{m}m")
    } else if m > 0 {
        format!("{m}m{:02}s", s % 60)
    } else {
        format!("{s}s")
    }
}

fn latency(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.1}s", ms / 1000.0)
    } else {
        format!("{ms:.0}ms")
    }
}

fn count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}
