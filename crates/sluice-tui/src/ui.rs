//! What the keys do: the screen's modes (the main view, the accounts menu, an account's
//! actions, text input, a y/n confirmation, the routing menu) and the commands they produce.
//! Pure: a key and the current [`View`] in, perhaps a [`Command`] out; the runner carries
//! commands out and reports back with [`Ui::report`].

use sluice_server::manage::AccountAction;

use crate::view::{AccountRow, View};

/// A key press, as far as the dashboard cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    Char(char),
    Up,
    Down,
    Enter,
    Esc,
    Backspace,
    /// Ctrl-C: the terminal is in raw mode, so it arrives as a key, not a signal.
    Interrupt,
}

/// Something for the runner to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Account {
        name: String,
        action: AccountAction,
    },
    Strategy(String),
    /// Stop accepting, drain, exit.
    Quit,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    Rename,
    Priority,
}

/// The actions offered for one account, in menu order.
pub const ACCOUNT_ACTIONS: [&str; 4] = ["enable / disable", "rename", "priority", "remove"];

#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    Main,
    /// The accounts menu (`a`), with the selected row.
    Accounts {
        selected: usize,
    },
    /// The actions for one account (Enter in the accounts menu).
    Actions {
        account: String,
        selected: usize,
    },
    /// Typing a new name or priority.
    Input {
        account: String,
        kind: InputKind,
        text: String,
    },
    /// A state change waiting for y/n; `back` is where either answer returns to.
    Confirm {
        prompt: String,
        command: Command,
        back: Box<Mode>,
    },
    /// The routing menu (`m`).
    Strategies {
        selected: usize,
    },
    /// Quit was confirmed: draining.
    Quitting,
}

/// A line for the status bar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub text: String,
    pub error: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Ui {
    pub mode: Mode,
    pub message: Option<Message>,
}

impl Default for Ui {
    fn default() -> Self {
        Ui {
            mode: Mode::Main,
            message: None,
        }
    }
}

fn up(selected: usize, len: usize) -> usize {
    if len == 0 {
        0
    } else {
        (selected + len - 1) % len
    }
}

fn down(selected: usize, len: usize) -> usize {
    if len == 0 { 0 } else { (selected + 1) % len }
}

impl Ui {
    /// The outcome of a command, for the status bar.
    pub fn report(&mut self, text: impl Into<String>, error: bool) {
        self.message = Some(Message {
            text: text.into(),
            error,
        });
    }

    fn tell(&mut self, text: impl Into<String>) {
        self.report(text, true);
    }

    /// Handle one key press.
    pub fn key(&mut self, key: Key, view: &View) -> Option<Command> {
        if key == Key::Interrupt {
            self.mode = Mode::Quitting;
            return Some(Command::Quit);
        }
        let mode = std::mem::replace(&mut self.mode, Mode::Main);
        let (mode, command) = self.next(mode, key, view);
        self.mode = mode;
        command
    }

    fn next(&mut self, mode: Mode, key: Key, view: &View) -> (Mode, Option<Command>) {
        match mode {
            Mode::Main => match key {
                Key::Char('a') => (Mode::Accounts { selected: 0 }, None),
                Key::Char('m') => {
                    let selected = view
                        .strategies
                        .iter()
                        .position(|s| *s == view.strategy)
                        .unwrap_or(0);
                    (Mode::Strategies { selected }, None)
                }
                Key::Char('q') => (
                    Mode::Confirm {
                        prompt: "Quit sluice? Requests in flight finish first.".to_owned(),
                        command: Command::Quit,
                        back: Box::new(Mode::Main),
                    },
                    None,
                ),
                _ => (Mode::Main, None),
            },
            Mode::Accounts { selected } => {
                let len = view.accounts.len();
                let selected = selected.min(len.saturating_sub(1));
                match key {
                    Key::Up | Key::Char('k') => (
                        Mode::Accounts {
                            selected: up(selected, len),
                        },
                        None,
                    ),
                    Key::Down | Key::Char('j') => (
                        Mode::Accounts {
                            selected: down(selected, len),
                        },
                        None,
                    ),
                    Key::Esc | Key::Char('a') | Key::Char('q') => (Mode::Main, None),
                    Key::Enter => match view.accounts.get(selected) {
                        Some(account) => (
                            Mode::Actions {
                                account: account.name.clone(),
                                selected: 0,
                            },
                            None,
                        ),
                        None => (Mode::Accounts { selected }, None),
                    },
                    Key::Char(c @ ('t' | 'n' | 'p' | 'd')) => {
                        let back = Mode::Accounts { selected };
                        match view.accounts.get(selected) {
                            Some(account) => self.action(account, c, back),
                            None => (back, None),
                        }
                    }
                    _ => (Mode::Accounts { selected }, None),
                }
            }
            Mode::Actions { account, selected } => {
                let back_to_list = || {
                    let selected = view
                        .accounts
                        .iter()
                        .position(|a| a.name == account)
                        .unwrap_or(0);
                    Mode::Accounts { selected }
                };
                match key {
                    Key::Up | Key::Char('k') => (
                        Mode::Actions {
                            selected: up(selected, ACCOUNT_ACTIONS.len()),
                            account,
                        },
                        None,
                    ),
                    Key::Down | Key::Char('j') => (
                        Mode::Actions {
                            selected: down(selected, ACCOUNT_ACTIONS.len()),
                            account,
                        },
                        None,
                    ),
                    Key::Esc => (back_to_list(), None),
                    Key::Enter => {
                        let back = back_to_list();
                        match view.accounts.iter().find(|a| a.name == account) {
                            Some(row) => {
                                let shortcut = ['t', 'n', 'p', 'd'][selected.min(3)];
                                self.action(row, shortcut, back)
                            }
                            None => (back, None),
                        }
                    }
                    _ => (Mode::Actions { account, selected }, None),
                }
            }
            Mode::Input {
                account,
                kind,
                mut text,
            } => {
                let back = Mode::Accounts {
                    selected: view
                        .accounts
                        .iter()
                        .position(|a| a.name == account)
                        .unwrap_or(0),
                };
                match key {
                    Key::Esc => (back, None),
                    Key::Backspace => {
                        text.pop();
                        (
                            Mode::Input {
                                account,
                                kind,
                                text,
                            },
                            None,
                        )
                    }
                    Key::Char(c) => {
                        let accepted = match kind {
                            InputKind::Rename => !c.is_control(),
                            InputKind::Priority => {
                                c.is_ascii_digit() || (c == '-' && text.is_empty())
                            }
                        };
                        if accepted && text.chars().count() < 64 {
                            text.push(c);
                        }
                        (
                            Mode::Input {
                                account,
                                kind,
                                text,
                            },
                            None,
                        )
                    }
                    Key::Enter => match kind {
                        InputKind::Rename if text.trim().is_empty() => {
                            self.tell("a name cannot be empty");
                            (
                                Mode::Input {
                                    account,
                                    kind,
                                    text,
                                },
                                None,
                            )
                        }
                        InputKind::Rename => (
                            back,
                            Some(Command::Account {
                                name: account,
                                action: AccountAction::Rename(text.trim().to_owned()),
                            }),
                        ),
                        InputKind::Priority => match text.parse::<i32>() {
                            Ok(priority) => (
                                back,
                                Some(Command::Account {
                                    name: account,
                                    action: AccountAction::Priority(priority),
                                }),
                            ),
                            Err(_) => {
                                self.tell("a priority is a whole number (lower is preferred)");
                                (
                                    Mode::Input {
                                        account,
                                        kind,
                                        text,
                                    },
                                    None,
                                )
                            }
                        },
                    },
                    _ => (
                        Mode::Input {
                            account,
                            kind,
                            text,
                        },
                        None,
                    ),
                }
            }
            Mode::Confirm {
                prompt,
                command,
                back,
            } => match key {
                Key::Char('y') | Key::Char('Y') => {
                    let next = if command == Command::Quit {
                        Mode::Quitting
                    } else {
                        *back
                    };
                    (next, Some(command))
                }
                Key::Char('n') | Key::Char('N') | Key::Esc => (*back, None),
                _ => (
                    Mode::Confirm {
                        prompt,
                        command,
                        back,
                    },
                    None,
                ),
            },
            Mode::Strategies { selected } => {
                let len = view.strategies.len();
                match key {
                    Key::Up | Key::Char('k') => (
                        Mode::Strategies {
                            selected: up(selected, len),
                        },
                        None,
                    ),
                    Key::Down | Key::Char('j') => (
                        Mode::Strategies {
                            selected: down(selected, len),
                        },
                        None,
                    ),
                    Key::Esc | Key::Char('m') | Key::Char('q') => (Mode::Main, None),
                    Key::Enter => match view.strategies.get(selected) {
                        Some(strategy) if *strategy == view.strategy => {
                            self.report(format!("routing is already {strategy}"), false);
                            (Mode::Main, None)
                        }
                        Some(strategy) => (
                            Mode::Confirm {
                                prompt: format!(
                                    "Switch routing from {} to {strategy}? Conversations keep their accounts.",
                                    view.strategy
                                ),
                                command: Command::Strategy(strategy.clone()),
                                back: Box::new(Mode::Main),
                            },
                            None,
                        ),
                        None => (Mode::Main, None),
                    },
                    _ => (Mode::Strategies { selected }, None),
                }
            }
            Mode::Quitting => (Mode::Quitting, None),
        }
    }

    /// An account action by its shortcut: `t` toggle, `n` rename, `p` priority, `d` remove.
    fn action(
        &mut self,
        account: &AccountRow,
        shortcut: char,
        back: Mode,
    ) -> (Mode, Option<Command>) {
        if account.from_config {
            self.tell(format!(
                "{} is declared in the config file: change it there (sluice applies the file when it is saved)",
                account.name
            ));
            return (back, None);
        }
        let name = account.name.clone();
        match shortcut {
            't' => {
                let (action, prompt) = if account.enabled {
                    (
                        AccountAction::Disable,
                        format!("Disable {name}? It takes no new requests until enabled again."),
                    )
                } else {
                    (AccountAction::Enable, format!("Enable {name}?"))
                };
                (
                    Mode::Confirm {
                        prompt,
                        command: Command::Account { name, action },
                        back: Box::new(back),
                    },
                    None,
                )
            }
            'n' => (
                Mode::Input {
                    account: name,
                    kind: InputKind::Rename,
                    text: String::new(),
                },
                None,
            ),
            'p' => (
                Mode::Input {
                    account: name,
                    kind: InputKind::Priority,
                    text: account.priority.to_string(),
                },
                None,
            ),
            'd' if account.in_flight > 0 => {
                self.tell(format!(
                    "{name} has {} request(s) in flight; remove it once it is idle",
                    account.in_flight
                ));
                (back, None)
            }
            'd' => (
                Mode::Confirm {
                    prompt: format!("Remove {name} and its credentials? This cannot be undone."),
                    command: Command::Account {
                        name,
                        action: AccountAction::Remove,
                    },
                    back: Box::new(back),
                },
                None,
            ),
            _ => (back, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> View {
        View {
            strategy: "adaptive".into(),
            strategies: vec!["adaptive".into(), "sticky".into(), "round-robin".into()],
            accounts: vec![
                AccountRow {
                    name: "max".into(),
                    enabled: true,
                    priority: 0,
                    ..AccountRow::default()
                },
                AccountRow {
                    name: "busy".into(),
                    enabled: false,
                    in_flight: 2,
                    ..AccountRow::default()
                },
                AccountRow {
                    name: "declared".into(),
                    enabled: true,
                    from_config: true,
                    ..AccountRow::default()
                },
            ],
            ..View::default()
        }
    }

    fn press(ui: &mut Ui, keys: &[Key]) -> Vec<Command> {
        let view = view();
        keys.iter().filter_map(|k| ui.key(*k, &view)).collect()
    }

    #[test]
    fn disabling_asks_first_and_no_changes_nothing() {
        let mut ui = Ui::default();
        assert!(press(&mut ui, &[Key::Char('a'), Key::Char('t')]).is_empty());
        assert!(matches!(ui.mode, Mode::Confirm { .. }));
        assert!(press(&mut ui, &[Key::Char('n')]).is_empty());
        assert_eq!(ui.mode, Mode::Accounts { selected: 0 });
        let commands = press(&mut ui, &[Key::Char('t'), Key::Char('y')]);
        assert_eq!(
            commands,
            [Command::Account {
                name: "max".into(),
                action: AccountAction::Disable
            }]
        );
        assert_eq!(ui.mode, Mode::Accounts { selected: 0 });
    }

    #[test]
    fn menus_move_with_arrows_and_vi_keys_and_wrap() {
        let mut ui = Ui::default();
        press(&mut ui, &[Key::Char('a'), Key::Down, Key::Char('j')]);
        assert_eq!(ui.mode, Mode::Accounts { selected: 2 });
        press(&mut ui, &[Key::Char('j')]);
        assert_eq!(ui.mode, Mode::Accounts { selected: 0 });
        press(&mut ui, &[Key::Up, Key::Char('k')]);
        assert_eq!(ui.mode, Mode::Accounts { selected: 1 });
        press(&mut ui, &[Key::Esc]);
        assert_eq!(ui.mode, Mode::Main);
    }

    #[test]
    fn enabling_from_the_actions_menu() {
        let mut ui = Ui::default();
        let commands = press(
            &mut ui,
            &[
                Key::Char('a'),
                Key::Down,
                Key::Enter,
                Key::Enter,
                Key::Char('y'),
            ],
        );
        assert_eq!(
            commands,
            [Command::Account {
                name: "busy".into(),
                action: AccountAction::Enable
            }]
        );
    }

    #[test]
    fn a_busy_account_is_not_removed_and_a_declared_one_not_touched() {
        let mut ui = Ui::default();
        assert!(press(&mut ui, &[Key::Char('a'), Key::Down, Key::Char('d')]).is_empty());
        assert!(ui.message.as_ref().unwrap().text.contains("in flight"));
        assert_eq!(ui.mode, Mode::Accounts { selected: 1 });
        assert!(press(&mut ui, &[Key::Down, Key::Char('t')]).is_empty());
        assert!(ui.message.as_ref().unwrap().text.contains("config file"));
        let commands = press(&mut ui, &[Key::Char('j'), Key::Char('d'), Key::Char('y')]);
        assert_eq!(
            commands,
            [Command::Account {
                name: "max".into(),
                action: AccountAction::Remove
            }]
        );
    }

    #[test]
    fn renaming_and_setting_a_priority_take_typed_input() {
        let mut ui = Ui::default();
        let mut keys = vec![Key::Char('a'), Key::Char('n')];
        keys.extend("work max".chars().map(Key::Char));
        keys.push(Key::Backspace);
        keys.push(Key::Enter);
        let commands = press(&mut ui, &keys);
        assert_eq!(
            commands,
            [Command::Account {
                name: "max".into(),
                action: AccountAction::Rename("work ma".into())
            }]
        );
        let commands = press(
            &mut ui,
            &[
                Key::Char('p'),
                Key::Backspace,
                Key::Char('-'),
                Key::Char('x'),
                Key::Char('2'),
                Key::Enter,
            ],
        );
        assert_eq!(
            commands,
            [Command::Account {
                name: "max".into(),
                action: AccountAction::Priority(-2)
            }]
        );
    }

    #[test]
    fn switching_routing_asks_and_quitting_drains() {
        let mut ui = Ui::default();
        let commands = press(
            &mut ui,
            &[Key::Char('m'), Key::Down, Key::Enter, Key::Char('y')],
        );
        assert_eq!(commands, [Command::Strategy("sticky".into())]);
        assert_eq!(ui.mode, Mode::Main);
        assert!(press(&mut ui, &[Key::Char('q'), Key::Esc]).is_empty());
        assert_eq!(ui.mode, Mode::Main);
        assert_eq!(
            press(&mut ui, &[Key::Char('q'), Key::Char('y')]),
            [Command::Quit]
        );
        assert_eq!(ui.mode, Mode::Quitting);
        let mut ui = Ui::default();
        assert_eq!(
            press(&mut ui, &[Key::Char('a'), Key::Interrupt]),
            [Command::Quit]
        );
    }
}
