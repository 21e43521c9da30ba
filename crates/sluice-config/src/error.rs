//! `ConfigError`: every way loading the configuration can fail, carrying the
//! file, line, column and key path so the user can jump straight to the mistake.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::locate::{SourceMap, guess_key_path_at, position_in};

/// A 1-based line and column (columns count characters, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

/// Broad category of a [`ConfigError`], for callers that react differently
/// (for example, a reload keeps the old config on any of these).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The file could not be read.
    Io,
    /// A config file named explicitly (`--config`, `$SLUICE_CONFIG`) does not exist.
    NotFound,
    /// The file is not valid TOML.
    Syntax,
    /// Valid TOML that does not fit the schema: unknown key or wrong type.
    Schema,
    /// A value that has the right type but breaks a rule.
    Invalid,
    /// A `SLUICE_*` override variable holds a bad value.
    Environment,
}

/// Why the configuration could not be loaded.
///
/// Displays as `path:line:column: key: message`, leaving out whatever is unknown.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}{message}", self.prefix())]
pub struct ConfigError {
    /// What sort of failure this is.
    pub kind: ErrorKind,
    /// The config file, when the config came from one.
    pub file: Option<PathBuf>,
    /// Where in the file, when known.
    pub position: Option<Position>,
    /// The key path (`accounts[1].weight`) or, for overrides, the variable name.
    pub key: Option<String>,
    /// What is wrong, without any secret value.
    pub message: String,
}

impl ConfigError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            file: None,
            position: None,
            key: None,
            message: message.into(),
        }
    }

    pub(crate) fn with_key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }

    pub(crate) fn with_file(mut self, file: Option<PathBuf>) -> Self {
        self.file = file;
        self
    }

    pub(crate) fn with_position(mut self, position: Option<Position>) -> Self {
        self.position = position;
        self
    }

    /// The I/O error's text goes into the message rather than `source()`, so a
    /// plain `{}` print already tells the whole story.
    pub(crate) fn io(file: PathBuf, what: &str, io: &std::io::Error) -> Self {
        Self::new(ErrorKind::Io, format!("{what}: {io}")).with_file(Some(file))
    }

    /// The 1-based line, when known.
    pub fn line(&self) -> Option<usize> {
        self.position.map(|p| p.line)
    }

    /// The 1-based column, when known.
    pub fn column(&self) -> Option<usize> {
        self.position.map(|p| p.column)
    }

    fn prefix(&self) -> Prefix<'_> {
        Prefix(self)
    }
}

/// Invalid TOML. No document exists yet, so the key path is a best guess.
pub(crate) fn syntax_error(
    source: &str,
    file: Option<&Path>,
    error: &toml_edit::TomlError,
) -> ConfigError {
    let span = error.span();
    ConfigError {
        kind: ErrorKind::Syntax,
        file: file.map(Path::to_path_buf),
        position: span.clone().map(|span| position_in(source, span.start)),
        key: span.and_then(|span| guess_key_path_at(source, span.start)),
        message: format!("invalid TOML: {}", error.message()),
    }
}

/// Valid TOML that does not fit the schema (unknown key, wrong type).
pub(crate) fn schema_error(
    map: &SourceMap<'_>,
    source: &str,
    file: Option<&Path>,
    error: &toml::de::Error,
) -> ConfigError {
    let span = error.span();
    ConfigError {
        kind: ErrorKind::Schema,
        file: file.map(Path::to_path_buf),
        position: span.clone().map(|span| position_in(source, span.start)),
        key: span.and_then(|span| map.key_path_at(span.start)),
        message: describe_serde_message(error.message()),
    }
}

/// Serde speaks of "fields"; users write keys. Serde also quotes the offending
/// string in type errors, which could be a secret typed into the wrong key.
fn describe_serde_message(message: &str) -> String {
    let message = match message.strip_prefix("unknown field") {
        Some(rest) => format!("unknown key{rest}"),
        None => message.to_owned(),
    };
    redact_quoted_strings(&message)
}

/// `invalid type: string "sk-…", expected u32` → `invalid type: string, expected u32`.
fn redact_quoted_strings(message: &str) -> String {
    const MARKER: &str = "string \"";
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(start) = rest.find(MARKER) {
        out.push_str(&rest[..start]);
        out.push_str("string");
        let quoted = &rest[start + MARKER.len()..];
        let mut escaped = false;
        let close = quoted.char_indices().find(|&(_, c)| {
            let is_close = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            is_close
        });
        rest = match close {
            Some((index, _)) => &quoted[index + 1..],
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// Everything before the message, e.g. `/etc/sluice.toml:12:10: accounts[1].weight: `.
struct Prefix<'a>(&'a ConfigError);

impl fmt::Display for Prefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let error = self.0;
        match (&error.file, error.position) {
            (Some(file), Some(pos)) => {
                write!(f, "{}:{}:{}: ", file.display(), pos.line, pos.column)?
            }
            (Some(file), None) => write!(f, "{}: ", file.display())?,
            (None, Some(pos)) => write!(f, "line {}, column {}: ", pos.line, pos.column)?,
            (None, None) => {}
        }
        if let Some(key) = &error.key {
            write!(f, "{key}: ")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_has_file_line_column_key_and_message() {
        let error = ConfigError::new(ErrorKind::Invalid, "must be at least 1")
            .with_key("accounts[1].weight")
            .with_file(Some(PathBuf::from("/path/config.toml")))
            .with_position(Some(Position {
                line: 12,
                column: 10,
            }));
        assert_eq!(
            error.to_string(),
            "/path/config.toml:12:10: accounts[1].weight: must be at least 1"
        );
        assert_eq!(error.line(), Some(12));
        assert_eq!(error.column(), Some(10));
    }

    #[test]
    fn display_leaves_out_unknown_parts() {
        let error = ConfigError::new(ErrorKind::Environment, "not a socket address")
            .with_key("SLUICE_LISTEN");
        assert_eq!(error.to_string(), "SLUICE_LISTEN: not a socket address");

        let error = ConfigError::new(ErrorKind::Invalid, "bad")
            .with_key("listen")
            .with_position(Some(Position { line: 1, column: 1 }));
        assert_eq!(error.to_string(), "line 1, column 1: listen: bad");

        let error = ConfigError::io(
            PathBuf::from("/x.toml"),
            "cannot read config file",
            &std::io::Error::other("boom"),
        );
        assert_eq!(error.to_string(), "/x.toml: cannot read config file: boom");
    }

    #[test]
    fn serde_messages_hide_strings_and_say_key() {
        assert_eq!(
            describe_serde_message("invalid type: string \"sk-ant-\\\"x\", expected u32"),
            "invalid type: string, expected u32"
        );
        assert_eq!(
            describe_serde_message("unknown field `bogus`, expected `name`"),
            "unknown key `bogus`, expected `name`"
        );
        assert_eq!(describe_serde_message("string \"unterminated"), "string");
    }
}
