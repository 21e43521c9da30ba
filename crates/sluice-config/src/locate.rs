//! Translating between key paths (`accounts[1].weight`) and places in the
//! config text, so every error can name both the key and the line.

use std::collections::HashMap;
use std::ops::Range;

use toml_edit::{Item, Table, Value};

use crate::error::Position;

/// Every key of a parsed document with the spans of its key and its value.
pub(crate) struct SourceMap<'s> {
    source: &'s str,
    entries: Vec<Entry>,
}

struct Entry {
    path: String,
    key_span: Option<Range<usize>>,
    value_span: Option<Range<usize>>,
}

impl<'s> SourceMap<'s> {
    /// Parses `source` as TOML; fails with the parser's error on bad syntax.
    pub(crate) fn parse(source: &'s str) -> Result<Self, toml_edit::TomlError> {
        let document = toml_edit::Document::parse(source)?;
        let mut map = Self {
            source,
            entries: Vec::new(),
        };
        map.walk_table("", document.as_table());
        Ok(map)
    }

    /// Where `path` is written. A key that is absent from the file (a default,
    /// or a rule about a missing key) points at the nearest enclosing table that
    /// is present, e.g. the `[[accounts]]` header of that account.
    pub(crate) fn position_of_key(&self, path: &str) -> Option<Position> {
        let mut current = Some(path);
        while let Some(path) = current {
            let span = self
                .entries
                .iter()
                .find(|entry| entry.path == path)
                .and_then(|entry| entry.key_span.clone().or_else(|| entry.value_span.clone()));
            if let Some(span) = span {
                return Some(position_in(self.source, span.start));
            }
            current = parent_path(path);
        }
        None
    }

    /// The most specific key whose key or value text covers `offset`.
    pub(crate) fn key_path_at(&self, offset: usize) -> Option<String> {
        self.entries
            .iter()
            .flat_map(|entry| {
                [&entry.key_span, &entry.value_span]
                    .into_iter()
                    .flatten()
                    .filter(|span| covers(span, offset))
                    .map(move |span| (span.len(), &entry.path))
            })
            .min_by_key(|(len, _)| *len)
            .map(|(_, path)| path.clone())
    }

    fn push(
        &mut self,
        path: String,
        key_span: Option<Range<usize>>,
        value_span: Option<Range<usize>>,
    ) {
        self.entries.push(Entry {
            path,
            key_span,
            value_span,
        });
    }

    fn walk_table(&mut self, prefix: &str, table: &Table) {
        for (key, item) in table.iter() {
            let path = join_key(prefix, key);
            let key_span = table.key(key).and_then(toml_edit::Key::span);
            self.push(path.clone(), key_span, item.span());
            self.walk_item(&path, item);
        }
    }

    fn walk_item(&mut self, path: &str, item: &Item) {
        match item {
            Item::Table(table) => self.walk_table(path, table),
            Item::ArrayOfTables(array) => {
                for (index, table) in array.iter().enumerate() {
                    let element = format!("{path}[{index}]");
                    self.push(element.clone(), None, table.span());
                    self.walk_table(&element, table);
                }
            }
            Item::Value(value) => self.walk_value(path, value),
            Item::None => {}
        }
    }

    fn walk_value(&mut self, path: &str, value: &Value) {
        match value {
            Value::InlineTable(table) => {
                for (key, value) in table.iter() {
                    let child = join_key(path, key);
                    let key_span = table.key(key).and_then(toml_edit::Key::span);
                    self.push(child.clone(), key_span, value.span());
                    self.walk_value(&child, value);
                }
            }
            Value::Array(array) => {
                for (index, value) in array.iter().enumerate() {
                    let element = format!("{path}[{index}]");
                    self.push(element.clone(), None, value.span());
                    self.walk_value(&element, value);
                }
            }
            _ => {}
        }
    }
}

fn covers(span: &Range<usize>, offset: usize) -> bool {
    span.contains(&offset) || (span.is_empty() && span.start == offset)
}

/// 1-based line and character column of a byte offset.
pub(crate) fn position_in(source: &str, offset: usize) -> Position {
    let offset = char_boundary_at_or_before(source, offset);
    let before = &source[..offset];
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    Position {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

/// `accounts[1].weight` → `accounts[1]` → `accounts` → none.
pub(crate) fn parent_path(path: &str) -> Option<&str> {
    if let Some(stripped) = path.strip_suffix(']') {
        return stripped.rfind('[').map(|open| &path[..open]);
    }
    path.rfind('.').map(|dot| &path[..dot])
}

/// Appends one key segment, quoting keys that are not bare so that a strange
/// unknown key still reads unambiguously in an error.
pub(crate) fn join_key(prefix: &str, key: &str) -> String {
    let segment = if is_bare_key(key) {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        segment
    } else {
        format!("{prefix}.{segment}")
    }
}

fn is_bare_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Best-effort key path for a syntax error, where no parsed document exists:
/// the last table header above `offset` plus the key on the error's line.
/// Gives up (returns `None`) on anything that is not plain bare keys.
pub(crate) fn guess_key_path_at(source: &str, offset: usize) -> Option<String> {
    let offset = char_boundary_at_or_before(source, offset);
    let line_start = source[..offset]
        .rfind('\n')
        .map_or(0, |newline| newline + 1);
    let line_end = source[offset..]
        .find('\n')
        .map_or(source.len(), |n| offset + n);
    let error_line = source[line_start..line_end].trim();
    if error_line.starts_with('[') {
        return None;
    }

    let mut array_counts: HashMap<String, usize> = HashMap::new();
    let mut table: Option<String> = None;
    for line in source[..line_start].lines() {
        let Some((name, is_array)) = parse_header(line) else {
            continue;
        };
        if is_array {
            *array_counts.entry(name.clone()).or_default() += 1;
        }
        table = Some(indexed_table_path(&name, &array_counts));
    }

    let key = error_line
        .split_once('=')
        .and_then(|(key, _)| normalize_dotted_key(key));
    match (table, key) {
        (Some(table), Some(key)) => Some(format!("{table}.{key}")),
        (table, key) => table.or(key),
    }
}

fn char_boundary_at_or_before(source: &str, offset: usize) -> usize {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// `[a.b]` → `("a.b", false)`, `[[accounts]]` → `("accounts", true)`.
fn parse_header(line: &str) -> Option<(String, bool)> {
    let line = line.trim();
    let line = line
        .split_once('#')
        .map_or(line, |(before, _)| before)
        .trim_end();
    let (inner, is_array) =
        if let Some(inner) = line.strip_prefix("[[").and_then(|l| l.strip_suffix("]]")) {
            (inner, true)
        } else {
            (line.strip_prefix('[')?.strip_suffix(']')?, false)
        };
    normalize_dotted_key(inner).map(|name| (name, is_array))
}

fn normalize_dotted_key(key: &str) -> Option<String> {
    let segments: Vec<&str> = key.split('.').map(str::trim).collect();
    segments
        .iter()
        .all(|segment| is_bare_key(segment))
        .then(|| segments.join("."))
}

/// Inserts the current array index after every array-of-tables prefix, so
/// `[accounts.extra]` after the second `[[accounts]]` becomes `accounts[1].extra`.
fn indexed_table_path(name: &str, array_counts: &HashMap<String, usize>) -> String {
    let mut plain = String::new();
    let mut indexed = String::new();
    for segment in name.split('.') {
        if !plain.is_empty() {
            plain.push('.');
            indexed.push('.');
        }
        plain.push_str(segment);
        indexed.push_str(segment);
        if let Some(count) = array_counts.get(&plain) {
            indexed.push_str(&format!("[{}]", count.saturating_sub(1)));
        }
    }
    indexed
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"listen = "127.0.0.1:1"
client_keys = ["a", "b"]
scheduler.strategy = "adaptive"

[[accounts]]
name = "one"

[[accounts]]
name = "two"
weight = 3

[providers.anthropic]
base_url = "https://example.com"
"#;

    fn map() -> SourceMap<'static> {
        SourceMap::parse(DOC).expect("valid toml")
    }

    fn line_of(path: &str) -> Option<usize> {
        map().position_of_key(path).map(|p| p.line)
    }

    #[test]
    fn finds_keys_by_path() {
        assert_eq!(line_of("listen"), Some(1));
        assert_eq!(line_of("client_keys[1]"), Some(2));
        assert_eq!(line_of("scheduler.strategy"), Some(3));
        assert_eq!(line_of("accounts[1].weight"), Some(10));
        assert_eq!(line_of("providers.anthropic.base_url"), Some(13));
        let position = map()
            .position_of_key("accounts[1].weight")
            .expect("present");
        assert_eq!(position.column, 1);
    }

    #[test]
    fn absent_keys_fall_back_to_their_table() {
        assert_eq!(line_of("accounts[0].api_key"), Some(5));
        assert_eq!(line_of("accounts[1].api_key"), Some(8));
        assert_eq!(line_of("providers.anthropic.token_url"), Some(12));
        assert_eq!(line_of("limits.max_request_body"), None);
    }

    #[test]
    fn finds_paths_by_offset() {
        let map = map();
        let offset = DOC.find("3\n").expect("weight value");
        assert_eq!(
            map.key_path_at(offset).as_deref(),
            Some("accounts[1].weight")
        );
        let offset = DOC.find("\"b\"").expect("second client key");
        assert_eq!(map.key_path_at(offset).as_deref(), Some("client_keys[1]"));
        let offset = DOC.find("base_url").expect("key");
        assert_eq!(
            map.key_path_at(offset).as_deref(),
            Some("providers.anthropic.base_url")
        );
    }

    #[test]
    fn positions_count_characters() {
        let source = "a = \"é\"\nb = 1";
        assert_eq!(position_in(source, 0), Position { line: 1, column: 1 });
        let after_accent = source.find("\"\n").expect("closing quote");
        assert_eq!(position_in(source, after_accent).column, 7);
        assert_eq!(
            position_in(source, source.len()),
            Position { line: 2, column: 6 }
        );
    }

    #[test]
    fn parent_paths() {
        assert_eq!(parent_path("accounts[1].weight"), Some("accounts[1]"));
        assert_eq!(parent_path("accounts[1]"), Some("accounts"));
        assert_eq!(parent_path("accounts"), None);
    }

    #[test]
    fn unusual_keys_are_quoted() {
        assert_eq!(join_key("log", "my key"), "log.\"my key\"");
        assert_eq!(join_key("", "listen"), "listen");
    }

    #[test]
    fn guesses_key_for_syntax_errors() {
        let source = "[[accounts]]\nname = \"a\"\n\n[[accounts]]\nname = \"b\"\nweight = \n";
        let offset = source.rfind("= ").expect("value") + 2;
        assert_eq!(
            guess_key_path_at(source, offset).as_deref(),
            Some("accounts[1].weight")
        );
        let source = "listen = \n";
        assert_eq!(guess_key_path_at(source, 9).as_deref(), Some("listen"));
        let source = "[upstream]\nconnect_timeout = 10s\n";
        let offset = source.find("10s").expect("value");
        assert_eq!(
            guess_key_path_at(source, offset).as_deref(),
            Some("upstream.connect_timeout")
        );
    }
}
