//! Server-sent-event framing for a stream passing through.
//!
//! The proxy forwards whole events the moment they are complete: never a partial event, so
//! that if the upstream dies mid-event the client can be given a clean `error` event instead
//! of a truncated one; never held back once complete. When an upstream chunk holds exactly
//! whole events (the usual case) it is forwarded as the very same `Bytes`, without a copy.

use bytes::{Bytes, BytesMut};

/// Longest partial event held back; beyond it bytes are forwarded as they come.
const MAX_PENDING: usize = 1 << 20;

/// Splits a byte stream into complete events.
#[derive(Default)]
pub struct SseFramer {
    pending: BytesMut,
    /// The stream stopped being framed (an oversized event): pass bytes straight through.
    passthrough: bool,
}

/// One parsed event: its `event:` name (or `message`) and its joined `data:` payload.
pub struct SseEvent<'a> {
    pub name: &'a str,
    pub data: std::borrow::Cow<'a, [u8]>,
}

impl SseFramer {
    /// Feed one upstream chunk. Returns the bytes that complete events (to forward now) and
    /// calls `on_event` for each event they complete.
    pub fn push(&mut self, chunk: Bytes, mut on_event: impl FnMut(SseEvent<'_>)) -> Option<Bytes> {
        if self.passthrough {
            return Some(chunk);
        }
        if self.pending.is_empty() {
            let Some(end) = last_boundary(&chunk) else {
                self.hold(&chunk);
                return self.overflow();
            };
            for_each_event(&chunk[..end], &mut on_event);
            if end == chunk.len() {
                return Some(chunk);
            }
            self.pending.extend_from_slice(&chunk[end..]);
            return Some(chunk.slice(..end));
        }
        self.pending.extend_from_slice(&chunk);
        let Some(end) = last_boundary(&self.pending) else {
            return self.overflow();
        };
        let ready = self.pending.split_to(end).freeze();
        for_each_event(&ready, &mut on_event);
        Some(ready)
    }

    /// Whether a partial event is being held back.
    pub fn mid_event(&self) -> bool {
        !self.pending.is_empty()
    }

    /// At the upstream's clean end: whatever partial event remains, as the upstream sent it.
    pub fn finish(&mut self) -> Option<Bytes> {
        (!self.pending.is_empty()).then(|| self.pending.split().freeze())
    }

    /// Drop a held partial event (the stream broke inside it).
    pub fn discard(&mut self) {
        self.pending.clear();
    }

    fn hold(&mut self, chunk: &[u8]) {
        self.pending.extend_from_slice(chunk);
    }

    fn overflow(&mut self) -> Option<Bytes> {
        if self.pending.len() > MAX_PENDING {
            self.passthrough = true;
            return Some(self.pending.split().freeze());
        }
        None
    }
}

/// The offset just past the last blank line (`\n\n` or `\r\n\r\n`) in `bytes`.
fn last_boundary(bytes: &[u8]) -> Option<usize> {
    memchr::memrchr_iter(b'\n', bytes)
        .find(|&i| ends_blank_line(bytes, i))
        .map(|i| i + 1)
}

/// Whether the `\n` at `i` ends a blank line, i.e. closes an event.
fn ends_blank_line(bytes: &[u8], i: usize) -> bool {
    match i {
        0 => false,
        _ if bytes[i - 1] == b'\n' => true,
        1 => false,
        _ => bytes[i - 1] == b'\r' && bytes[i - 2] == b'\n',
    }
}

/// Call `on_event` for each event in `bytes`, which holds only whole events.
fn for_each_event(bytes: &[u8], on_event: &mut impl FnMut(SseEvent<'_>)) {
    let mut start = 0;
    for i in memchr::memchr_iter(b'\n', bytes) {
        if i >= start && ends_blank_line(bytes, i) && i > start {
            if let Some(parsed) = parse_event(&bytes[start..=i]) {
                on_event(parsed);
            }
            start = i + 1;
        }
    }
    if start < bytes.len()
        && let Some(parsed) = parse_event(&bytes[start..])
    {
        on_event(parsed);
    }
}

fn parse_event(block: &[u8]) -> Option<SseEvent<'_>> {
    let mut name: &str = "message";
    let mut data: Option<std::borrow::Cow<'_, [u8]>> = None;
    for line in block.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(value) = field(line, b"event") {
            name = std::str::from_utf8(value).unwrap_or("message");
        } else if let Some(value) = field(line, b"data") {
            data = Some(match data {
                None => std::borrow::Cow::Borrowed(value),
                Some(previous) => {
                    let mut joined = previous.into_owned();
                    joined.push(b'\n');
                    joined.extend_from_slice(value);
                    std::borrow::Cow::Owned(joined)
                }
            });
        }
    }
    let data = data?;
    Some(SseEvent { name, data })
}

fn field<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let rest = line.strip_prefix(name)?.strip_prefix(b":")?;
    Some(rest.strip_prefix(b" ").unwrap_or(rest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(
        framer: &mut SseFramer,
        chunk: &'static [u8],
    ) -> (Option<Bytes>, Vec<(String, String)>) {
        let mut events = Vec::new();
        let out = framer.push(Bytes::from_static(chunk), |e| {
            events.push((
                e.name.to_owned(),
                String::from_utf8_lossy(&e.data).into_owned(),
            ))
        });
        (out, events)
    }

    #[test]
    fn whole_events_pass_without_a_copy() {
        let mut framer = SseFramer::default();
        let chunk = Bytes::from_static(b"event: ping\ndata: {}\n\nevent: a\ndata: 1\n\n");
        let ptr = chunk.as_ptr();
        let out = framer.push(chunk, |_| {}).unwrap();
        assert_eq!(out.as_ptr(), ptr);
        assert!(!framer.mid_event());
    }

    #[test]
    fn partial_events_are_held_until_complete() {
        let mut framer = SseFramer::default();
        let (out, events) = collect(&mut framer, b"event: a\ndata: 1\n\nevent: b\nda");
        assert_eq!(&out.unwrap()[..], b"event: a\ndata: 1\n\n");
        assert_eq!(events, vec![("a".into(), "1".into())]);
        assert!(framer.mid_event());
        let (out, events) = collect(&mut framer, b"ta: 2\n");
        assert!(out.is_none());
        assert!(events.is_empty());
        let (out, events) = collect(&mut framer, b"\n");
        assert_eq!(&out.unwrap()[..], b"event: b\ndata: 2\n\n");
        assert_eq!(events, vec![("b".into(), "2".into())]);
    }

    #[test]
    fn crlf_and_multiline_data() {
        let mut framer = SseFramer::default();
        let (_, events) = collect(
            &mut framer,
            b"event: x\r\ndata: a\r\ndata: b\r\n\r\ndata: plain\n\n",
        );
        assert_eq!(
            events,
            vec![
                ("x".into(), "a\nb".into()),
                ("message".into(), "plain".into())
            ]
        );
    }

    #[test]
    fn leftovers_come_out_at_a_clean_end() {
        let mut framer = SseFramer::default();
        let _ = collect(&mut framer, b"data: tail-without-blank-line");
        assert_eq!(
            &framer.finish().unwrap()[..],
            b"data: tail-without-blank-line"
        );
        assert!(framer.finish().is_none());
    }

    proptest::proptest! {
        /// However the upstream splits a stream into chunks, the client gets the same bytes,
        /// only ever whole events, and the same events are observed.
        #[test]
        fn any_chunking_gives_the_same_bytes_and_events(
            events in proptest::collection::vec(("[a-z_]{1,12}", "[ -~]{0,40}", proptest::bool::ANY), 1..12),
            cuts in proptest::collection::vec(0usize..2000, 0..20),
        ) {
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for (name, data, crlf) in &events {
                let nl = if *crlf { "\r\n" } else { "\n" };
                stream.extend_from_slice(format!("event: {name}{nl}data: {data}{nl}{nl}").as_bytes());
                expected.push((name.clone(), data.clone()));
            }
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (stream.len() + 1)).collect();
            cuts.sort_unstable();
            cuts.dedup();
            let mut framer = SseFramer::default();
            let mut out = Vec::new();
            let mut seen = Vec::new();
            let mut previous = 0;
            for cut in cuts.into_iter().chain([stream.len()]) {
                let chunk = Bytes::copy_from_slice(&stream[previous..cut]);
                previous = cut;
                if let Some(ready) = framer.push(chunk, |e| {
                    seen.push((e.name.to_owned(), String::from_utf8_lossy(&e.data).into_owned()))
                }) {
                    proptest::prop_assert!(ready.ends_with(b"\n\n") || ready.ends_with(b"\r\n\r\n"), "only whole events go out");
                    out.extend_from_slice(&ready);
                }
            }
            proptest::prop_assert!(framer.finish().is_none());
            proptest::prop_assert_eq!(out, stream);
            proptest::prop_assert_eq!(seen, expected);
        }
    }
}
