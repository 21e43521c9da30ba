//! Snapshot tests of whole frames, drawn into ratatui's `TestBackend` from a hand-built
//! [`View`]: what a user sees in each mode, character for character.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use sluice_tui::ui::{Key, Ui};
use sluice_tui::view::{AccountRow, RequestRow, View, Window};

const NOW: i64 = 1_767_225_600_000;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

fn view() -> View {
    View {
        now_ms: NOW,
        version: "0.1.0".into(),
        listen: "127.0.0.1:8787".into(),
        strategy: "adaptive".into(),
        strategies: ["adaptive", "maxpool", "sticky", "round-robin"]
            .map(String::from)
            .to_vec(),
        preferred_account: None,
        requests_per_minute: 42,
        failed_per_minute: 1,
        tokens_per_minute: 183_400,
        queued: 0,
        in_flight: 3,
        available: 2,
        breaker_open: false,
        draining: false,
        accounts: vec![
            AccountRow {
                name: "work-max".into(),
                provider: "anthropic".into(),
                plan: "max".into(),
                state: "available".into(),
                enabled: true,
                session: Some(Window {
                    used: 0.42,
                    resets_at: Some(NOW + 2 * HOUR + 13 * MINUTE),
                }),
                weekly: Some(Window {
                    used: 0.31,
                    resets_at: Some(NOW + 4 * 24 * HOUR + 2 * HOUR),
                }),
                in_flight: 2,
                requests_15m: 120,
                requests_1h: 410,
                ..AccountRow::default()
            },
            AccountRow {
                name: "home-pro".into(),
                provider: "anthropic".into(),
                plan: "pro".into(),
                state: "rate_limited".into(),
                until: Some(NOW + 47 * MINUTE),
                enabled: true,
                session: Some(Window {
                    used: 1.0,
                    resets_at: Some(NOW + 47 * MINUTE),
                }),
                weekly: Some(Window {
                    used: 0.93,
                    resets_at: Some(NOW + 26 * HOUR),
                }),
                requests_15m: 3,
                requests_1h: 51,
                last_error: Some("rate_limited (HTTP 429)".into()),
                ..AccountRow::default()
            },
            AccountRow {
                name: "ci-key".into(),
                provider: "anthropic".into(),
                plan: "api key".into(),
                state: "available".into(),
                enabled: true,
                from_config: true,
                in_flight: 1,
                requests_15m: 9,
                requests_1h: 30,
                ..AccountRow::default()
            },
        ],
        requests: vec![
            RequestRow {
                at_ms: NOW - 2_000,
                provider: "anthropic".into(),
                account: Some("work-max".into()),
                model: Some("claude-sonnet-4-5-20250929".into()),
                status: 200,
                latency_ms: 8_412.0,
                input_tokens: 48_210,
                output_tokens: 1_204,
                failovers: vec!["rate_limited".into()],
                ..RequestRow::default()
            },
            RequestRow {
                at_ms: NOW - 9_000,
                provider: "anthropic".into(),
                account: Some("ci-key".into()),
                model: Some("claude-haiku-4-5".into()),
                status: 529,
                latency_ms: 311.0,
                error: Some("overloaded".into()),
                ..RequestRow::default()
            },
        ],
        log: vec![
            "2026-01-01T00:00:00Z  INFO sluice is serving listen=127.0.0.1:8787 accounts=3".into(),
            "2026-01-01T00:12:04Z  WARN account rate limited account=home-pro".into(),
        ],
        request_log: Some((1_234, 0)),
    }
}

fn frame(view: &View, ui: &Ui) -> String {
    let mut terminal = Terminal::new(TestBackend::new(132, 30)).unwrap();
    terminal
        .draw(|frame| sluice_tui::draw::draw(frame, view, ui))
        .unwrap();
    terminal.backend().to_string()
}

fn after(keys: &[Key]) -> Ui {
    let view = view();
    let mut ui = Ui::default();
    for key in keys {
        ui.key(*key, &view);
    }
    ui
}

#[test]
fn the_main_screen() {
    insta::assert_snapshot!(frame(&view(), &Ui::default()));
}

#[test]
fn the_accounts_menu_with_an_account_selected() {
    insta::assert_snapshot!(frame(&view(), &after(&[Key::Char('a'), Key::Down])));
}

#[test]
fn an_accounts_actions() {
    insta::assert_snapshot!(frame(&view(), &after(&[Key::Char('a'), Key::Enter])));
}

#[test]
fn disabling_asks_first() {
    insta::assert_snapshot!(frame(&view(), &after(&[Key::Char('a'), Key::Char('t')])));
}

#[test]
fn the_routing_menu() {
    insta::assert_snapshot!(frame(&view(), &after(&[Key::Char('m'), Key::Down])));
}

#[test]
fn a_declared_account_is_refused_with_a_reason() {
    insta::assert_snapshot!(frame(
        &view(),
        &after(&[Key::Char('a'), Key::Up, Key::Char('d')])
    ));
}

#[test]
fn draining_after_quit() {
    let mut view = view();
    view.draining = true;
    insta::assert_snapshot!(frame(&view, &after(&[Key::Char('q'), Key::Char('y')])));
}
