//! `Secret<T>`: a value (token, API key) that must never reach logs, debug
//! output or rendered configuration by accident.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use url::Url;

/// What a [`Secret`] prints as wherever it is formatted or serialized.
pub const MASK: &str = "****";

/// A value that formats and serializes as [`MASK`].
///
/// Reading the value takes an explicit [`Secret::expose`] call, which makes every
/// place that handles the plain value easy to find. `PartialEq` is deliberately
/// missing: comparing secrets with `==` leaks timing, so callers compare the
/// exposed bytes with constant-time code instead.
#[derive(Clone, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps a value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// Borrows the plain value.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the plain value.
    pub fn into_exposed(self) -> T {
        self.0
    }
}

impl From<String> for Secret<String> {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret<String> {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl<T> Serialize for Secret<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(MASK)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        T::deserialize(deserializer).map(Self)
    }
}

/// The URL with any embedded password (`https://user:pass@host`) replaced by
/// [`MASK`], for rendering and debug output.
pub(crate) fn masked_url(url: &Url) -> String {
    if url.password().is_none() {
        return url.to_string();
    }
    let mut masked = url.clone();
    match masked.set_password(Some(MASK)) {
        Ok(()) => masked.to_string(),
        // Unreachable for a URL that already has a password; hide it all rather than leak.
        Err(()) => MASK.to_owned(),
    }
}

/// Debug-prints a URL through [`masked_url`].
pub(crate) struct MaskedUrl<'a>(pub &'a Url);

impl fmt::Debug for MaskedUrl<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", masked_url(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUE: &str = "sk-ant-api03-very-secret";

    #[test]
    fn formatting_never_shows_the_value() {
        let secret = Secret::from(VALUE.to_owned());
        assert_eq!(format!("{secret}"), MASK);
        assert_eq!(format!("{secret:?}"), MASK);
        assert_eq!(format!("{:?}", Some(secret.clone())), "Some(****)");
        assert_eq!(secret.expose(), VALUE);
    }

    #[test]
    fn serializes_masked() {
        let secret = Secret::from(VALUE);
        let json = serde_json::to_string(&secret).expect("serializes");
        assert_eq!(json, "\"****\"");
    }

    #[test]
    fn url_passwords_are_masked() {
        let url = Url::parse("https://user:hunter2@example.com/x").expect("valid");
        assert_eq!(masked_url(&url), "https://user:****@example.com/x");
        assert_eq!(
            format!("{:?}", MaskedUrl(&url)),
            "\"https://user:****@example.com/x\""
        );
        let plain = Url::parse("http://127.0.0.1:1").expect("valid");
        assert_eq!(masked_url(&plain), "http://127.0.0.1:1/");
    }

    #[test]
    fn deserializes_transparently() {
        #[derive(Deserialize)]
        struct Holder {
            key: Secret<String>,
        }
        let holder: Holder = toml::from_str(&format!("key = \"{VALUE}\"")).expect("parses");
        assert_eq!(holder.key.expose(), VALUE);
        assert_eq!(holder.key.into_exposed(), VALUE);
    }
}
