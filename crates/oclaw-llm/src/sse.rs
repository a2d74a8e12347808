//! Server-Sent Events read off a streamed HTTP body: `event:` and `data:` fields, events ended
//! by a blank line, split across network chunks anywhere.

/// One event.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct Event {
    pub event: String,
    pub data: String,
}

/// Accumulates bytes and yields whole events.
#[derive(Default)]
pub(crate) struct Decoder {
    buffer: Vec<u8>,
    current: Event,
}

impl Decoder {
    /// Feeds a chunk; returns the events it completed.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<Event> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(pos) = self.buffer.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=pos).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if !self.current.data.is_empty() || !self.current.event.is_empty() {
                    events.push(std::mem::take(&mut self.current));
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => self.current.event = value.to_string(),
                "data" => {
                    if !self.current.data.is_empty() {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                }
                _ => {}
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_anywhere_come_out_whole() {
        let text =
            b"event: a\ndata: {\"x\":\n\ndata: 1\ndata: 2\r\n\r\n: comment\n\ndata:[DONE]\n\n";
        for split in 1..text.len() {
            let mut d = Decoder::default();
            let mut events = d.feed(&text[..split]);
            events.extend(d.feed(&text[split..]));
            assert_eq!(
                events,
                [
                    Event {
                        event: "a".into(),
                        data: "{\"x\":".into()
                    },
                    Event {
                        event: String::new(),
                        data: "1\n2".into()
                    },
                    Event {
                        event: String::new(),
                        data: "[DONE]".into()
                    },
                ],
                "split at {split}"
            );
        }
    }
}
