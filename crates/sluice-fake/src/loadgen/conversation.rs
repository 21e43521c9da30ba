//! Claude-Code-like requests: conversations with a stable session id and device id, whose history grows
//! by one exchange per turn, rendered as `POST /v1/messages?beta=true` headers and JSON bodies.

use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Value, json};

/// Most exchanges of history a request carries (older turns are dropped, as if compacted).
const MAX_HISTORY_TURNS: u32 = 12;

/// One simulated Claude Code conversation.
#[derive(Debug, Clone)]
pub(crate) struct Conversation {
    pub session_id: String,
    device_id: String,
    turns: u32,
}

fn hex(rng: &mut StdRng, digits: usize) -> String {
    (0..digits)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).unwrap_or('0'))
        .collect()
}

/// A random version-4-shaped UUID.
pub(crate) fn uuid(rng: &mut StdRng) -> String {
    let h = hex(rng, 32);
    let variant = ['8', '9', 'a', 'b'][rng.random_range(0..4)];
    format!(
        "{}-{}-4{}-{variant}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

impl Conversation {
    pub(crate) fn new(rng: &mut StdRng) -> Self {
        Self {
            session_id: uuid(rng),
            device_id: hex(rng, 64),
            turns: 0,
        }
    }

    /// The `metadata.user_id` string Claude Code sends (a JSON document inside a string).
    fn user_id(&self) -> String {
        json!({ "device_id": self.device_id, "account_uuid": "", "session_id": self.session_id })
            .to_string()
    }

    /// The next request of this conversation (advances its turn counter).
    pub(crate) fn next_body(
        &mut self,
        model: &str,
        max_tokens: u64,
        stream: bool,
        system_padding: &str,
    ) -> Value {
        self.turns += 1;
        let first = self.turns.saturating_sub(MAX_HISTORY_TURNS) + 1;
        let mut messages = Vec::new();
        for turn in first..self.turns {
            messages.push(json!({ "role": "user", "content": format!("Step {turn}: please continue with the task.") }));
            messages.push(json!({ "role": "assistant", "content": format!("Done with step {turn}; the tests pass.") }));
        }
        messages.push(json!({
            "role": "user",
            "content": [{
                "type": "text",
                "text": format!("Step {}: please continue with the task.", self.turns),
                "cache_control": { "type": "ephemeral" },
            }],
        }));
        json!({
            "model": model,
            "max_tokens": max_tokens,
            "stream": stream,
            "system": [
                { "type": "text", "text": "You are a coding agent driven by the sluice load generator." },
                { "type": "text", "text": system_padding, "cache_control": { "type": "ephemeral" } },
            ],
            "messages": messages,
            "tools": tools(),
            "metadata": { "user_id": self.user_id() },
        })
    }
}

fn tools() -> Value {
    let tool = |name: &str, description: &str, param: &str| {
        json!({
            "name": name,
            "description": description,
            "input_schema": {
                "type": "object",
                "properties": { param: { "type": "string" } },
                "required": [param],
            },
        })
    };
    json!([
        tool("Bash", "Run a shell command.", "command"),
        tool("Read", "Read a file from disk.", "file_path"),
        tool("Edit", "Replace text in a file.", "file_path"),
        tool("Grep", "Search file contents.", "pattern"),
    ])
}

/// Filler text of about `bytes` bytes, standing in for Claude Code's long system prompt.
pub(crate) fn system_padding(bytes: usize) -> String {
    const LINE: &str = "Follow the repository conventions, keep changes small, and run the tests before finishing.\n";
    LINE.repeat(bytes.div_ceil(LINE.len()))
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn uuid_shape() {
        let mut rng = StdRng::seed_from_u64(1);
        let id = uuid(&mut rng);
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(
            parts.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert!(parts[2].starts_with('4'));
    }

    #[test]
    fn history_grows_and_is_capped() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut c = Conversation::new(&mut rng);
        let b1 = c.next_body("m", 100, true, "");
        assert_eq!(b1["messages"].as_array().unwrap().len(), 1);
        let b2 = c.next_body("m", 100, true, "");
        assert_eq!(b2["messages"].as_array().unwrap().len(), 3);
        for _ in 0..40 {
            c.next_body("m", 100, true, "");
        }
        let b = c.next_body("m", 100, true, "");
        assert_eq!(
            b["messages"].as_array().unwrap().len(),
            MAX_HISTORY_TURNS as usize * 2 - 1
        );
        let user_id: Value =
            serde_json::from_str(b["metadata"]["user_id"].as_str().unwrap()).unwrap();
        assert_eq!(user_id["session_id"], c.session_id.as_str());
    }
}
