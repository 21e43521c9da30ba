//! Client authentication: who may spend the pool.
//!
//! With no `client_keys` configured sluice only ever listens on loopback (start-up refuses
//! anything else), so every client is local and trusted. With keys configured, every request
//! must present one as `x-api-key`, `authorization: Bearer` or (the Gemini API's own header,
//! which the Gemini CLI sends its key in) `x-goog-api-key`, compared in constant time.
//!
//! The request log and the dashboards tell clients apart by an identifier derived from the
//! key they presented (`key-` and eight hex digits of its SHA-256), never by the key.

use std::sync::Arc;

use http::HeaderMap;
use sluice_config::Secret;
use subtle::ConstantTimeEq;

/// The configured client keys.
pub struct ClientKeys {
    keys: Vec<Secret<String>>,
    /// Each key's identifier, in the same order.
    ids: Vec<Arc<str>>,
}

impl ClientKeys {
    pub fn new(keys: &[Secret<String>]) -> Self {
        ClientKeys {
            keys: keys.to_vec(),
            ids: keys.iter().map(client_id).collect(),
        }
    }

    /// The identifier of the key the request presented, if it is one of the configured keys.
    pub fn identify(&self, headers: &HeaderMap) -> Option<Arc<str>> {
        if !self.required() {
            return None;
        }
        let presented = presented_key(headers)?;
        // Constant time across keys, like `admits`: look at every key, remember the match.
        let mut matched = None;
        for (index, key) in self.keys.iter().enumerate() {
            let equal: bool = key.expose().as_bytes().ct_eq(presented.as_bytes()).into();
            if equal {
                matched = Some(index);
            }
        }
        matched.map(|index| self.ids[index].clone())
    }

    /// Whether keys are required at all.
    pub fn required(&self) -> bool {
        !self.keys.is_empty()
    }

    /// Whether the request may pass.
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        if !self.required() {
            return true;
        }
        let presented = presented_key(headers);
        let Some(presented) = presented else {
            return false;
        };
        // Compare against every key so timing does not reveal which one matched.
        self.keys.iter().fold(false, |matched, key| {
            let equal: bool = key.expose().as_bytes().ct_eq(presented.as_bytes()).into();
            matched | equal
        })
    }
}

/// A short, stable identifier for a client key that does not reveal it.
fn client_id(key: &Secret<String>) -> Arc<str> {
    let digest = ring::digest::digest(&ring::digest::SHA256, key.expose().as_bytes());
    let hex: String = digest.as_ref()[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Arc::from(format!("key-{hex}"))
}

/// The key a client presented, from `x-api-key`, `x-goog-api-key` or a bearer
/// `authorization` header.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    for name in ["x-api-key", "x-goog-api-key"] {
        if let Some(key) = headers.get(name).and_then(|v| v.to_str().ok()) {
            return Some(key.trim());
        }
    }
    let auth = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = auth.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(list: &[&str]) -> ClientKeys {
        let secrets: Vec<Secret<String>> =
            list.iter().map(|k| Secret::from(k.to_string())).collect();
        ClientKeys::new(&secrets)
    }

    fn headers(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, value.parse().unwrap());
        h
    }

    #[test]
    fn clients_are_told_apart_without_their_keys() {
        let k = keys(&["sk-sluice-a", "sk-sluice-b"]);
        let a = k.identify(&headers("x-api-key", "sk-sluice-a")).unwrap();
        let b = k
            .identify(&headers("authorization", "Bearer sk-sluice-b"))
            .unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("key-") && a.len() == 12, "{a}");
        assert!(!a.contains("sluice"));
        assert_eq!(k.identify(&headers("x-api-key", "sk-sluice-a")), Some(a));
        assert_eq!(k.identify(&headers("x-api-key", "nope")), None);
        assert_eq!(keys(&[]).identify(&headers("x-api-key", "x")), None);
    }

    #[test]
    fn no_keys_admits_everyone() {
        assert!(keys(&[]).admits(&HeaderMap::new()));
    }

    #[test]
    fn keys_are_required_in_either_header() {
        let k = keys(&["sk-sluice-a", "sk-sluice-b"]);
        assert!(!k.admits(&HeaderMap::new()));
        assert!(k.admits(&headers("x-api-key", "sk-sluice-b")));
        assert!(k.admits(&headers("x-goog-api-key", "sk-sluice-a")));
        assert!(k.admits(&headers("authorization", "Bearer sk-sluice-a")));
        assert!(k.admits(&headers("authorization", "bearer  sk-sluice-a ")));
        assert!(!k.admits(&headers("authorization", "Basic sk-sluice-a")));
        assert!(!k.admits(&headers("x-api-key", "sk-sluice-")));
        assert!(!k.admits(&headers("x-api-key", "sk-sluice-ab")));
    }
}
