//! What the providers' unit tests share: header maps written as pairs, and the client
//! requests captured from the real CLIs and SDKs (`fixtures/client-requests/`).

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

/// A header map from `(name, value)` pairs, repeated names kept.
pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

/// One captured client request.
pub(crate) struct Captured {
    pub headers: HeaderMap,
    pub path: String,
    /// The JSON body (`null` for a request without one).
    pub body: serde_json::Value,
    /// The whole capture, for the fields a test wants beyond these.
    pub raw: serde_json::Value,
}

impl Captured {
    /// The body as the client sent it on the wire (empty when there was none).
    pub fn body_bytes(&self) -> Bytes {
        if self.body.is_null() {
            Bytes::new()
        } else {
            Bytes::from(self.body.to_string())
        }
    }
}

/// The capture `fixtures/client-requests/{name}`.
pub(crate) fn captured(name: &str) -> Captured {
    let text = std::fs::read_to_string(format!(
        "{}/../../fixtures/client-requests/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let raw: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut headers = HeaderMap::new();
    for pair in raw["headers"].as_array().unwrap() {
        headers.append(
            HeaderName::from_bytes(pair[0].as_str().unwrap().to_ascii_lowercase().as_bytes())
                .unwrap(),
            HeaderValue::from_str(pair[1].as_str().unwrap()).unwrap(),
        );
    }
    Captured {
        headers,
        path: raw["path"].as_str().unwrap_or_default().to_owned(),
        body: raw["body"].clone(),
        raw,
    }
}
