//! Structure-aware chunking: a document is cut at its Markdown headings into sections (each
//! chunk carries its heading path, "Returns › Refunds", as its first line), a section into
//! paragraphs, a long paragraph into sentences and a long sentence at character count; the
//! pieces are packed into chunks of at most `size` characters, each new chunk of a section
//! starting with the last pieces of the one before (at most `overlap` characters) so a fact
//! cut at a chunk's edge is whole in one of them.

/// Chunk sizes in characters (Chinese text counts each character).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkOptions {
    pub size: usize,
    pub overlap: usize,
}

impl Default for ChunkOptions {
    fn default() -> Self {
        ChunkOptions {
            size: 800,
            overlap: 120,
        }
    }
}

fn len(s: &str) -> usize {
    s.chars().count()
}

/// A Markdown heading line: its level and text.
fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.bytes().take_while(|b| *b == b'#').count();
    if !(1..=6).contains(&level) {
        return None;
    }
    let rest = &line[level..];
    if !rest.is_empty() && !rest.starts_with(' ') {
        return None;
    }
    Some((level, rest.trim().trim_end_matches('#').trim()))
}

struct Section {
    path: Vec<String>,
    body: String,
}

/// Cuts at headings (not inside fenced code).
fn sections(text: &str) -> Vec<Section> {
    let mut out = vec![Section {
        path: Vec::new(),
        body: String::new(),
    }];
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fenced = !fenced;
        }
        match (!fenced).then(|| heading(line)).flatten() {
            Some((level, title)) => {
                stack.retain(|(l, _)| *l < level);
                stack.push((level, title.to_string()));
                out.push(Section {
                    path: stack.iter().map(|(_, t)| t.clone()).collect(),
                    body: String::new(),
                });
            }
            None => {
                let body = &mut out.last_mut().expect("one section at least").body;
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    out
}

/// Sentences of a paragraph, each with its closing punctuation.
fn sentences(paragraph: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = paragraph.chars().peekable();
    while let Some(c) = chars.next() {
        current.push(c);
        let end = matches!(c, '。' | '！' | '？' | '；' | '\n')
            || (matches!(c, '.' | '!' | '?') && chars.peek().is_none_or(|n| n.is_whitespace()));
        if end {
            let s = current.trim();
            if !s.is_empty() {
                out.push(s.to_string());
            }
            current.clear();
        }
    }
    let s = current.trim();
    if !s.is_empty() {
        out.push(s.to_string());
    }
    out
}

/// Pieces of at most `size` characters: paragraphs, or sentences of longer ones, or cuts of
/// longer sentences.
fn pieces(body: &str, size: usize) -> Vec<String> {
    let mut out = Vec::new();
    for paragraph in body.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        if len(paragraph) <= size {
            out.push(paragraph.to_string());
            continue;
        }
        for sentence in sentences(paragraph) {
            if len(&sentence) <= size {
                out.push(sentence);
                continue;
            }
            let chars: Vec<char> = sentence.chars().collect();
            out.extend(chars.chunks(size).map(|c| c.iter().collect::<String>()));
        }
    }
    out
}

/// The chunks of a (Markdown or plain) text.
pub fn chunk_text(text: &str, options: ChunkOptions) -> Vec<String> {
    let size = options.size.max(64);
    let overlap = options.overlap.min(size / 2);
    let mut out = Vec::new();
    for section in sections(text) {
        let header = section.path.join(" › ");
        let room = size.saturating_sub(len(&header) + 1).max(32);
        let parts = pieces(&section.body, room);
        if parts.is_empty() {
            continue;
        }
        let emit = |current: &[String], out: &mut Vec<String>| {
            let body = current.join("\n\n");
            out.push(if header.is_empty() {
                body
            } else {
                format!("{header}\n{body}")
            });
        };
        let mut current: Vec<String> = Vec::new();
        let mut used = 0;
        let mut fresh = 0; // pieces in `current` not carried over from the chunk before
        for part in parts {
            let n = len(&part) + 2;
            if fresh > 0 && used + n > room {
                emit(&current, &mut out);
                // Carry the tail of this chunk into the next, up to `overlap` characters.
                let mut carried = Vec::new();
                let mut kept = 0;
                for p in current.iter().rev() {
                    if kept + len(p) > overlap {
                        break;
                    }
                    kept += len(p) + 2;
                    carried.insert(0, p.clone());
                }
                if kept + n > room {
                    carried.clear();
                    kept = 0;
                }
                current = carried;
                used = kept;
                fresh = 0;
            }
            used += n;
            fresh += 1;
            current.push(part);
        }
        if fresh > 0 {
            emit(&current, &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headings_start_sections_and_chunks_carry_their_path() {
        let text = "Intro line.\n\n# Returns\n\n## Refunds\n\nRefunds take five days.\n\n## Exchanges\n\nSwap within 30 days.\n";
        let chunks = chunk_text(text, ChunkOptions::default());
        assert_eq!(
            chunks,
            [
                "Intro line.",
                "Returns › Refunds\nRefunds take five days.",
                "Returns › Exchanges\nSwap within 30 days."
            ]
        );
    }

    #[test]
    fn headings_inside_code_fences_are_text() {
        let text = "# Setup\n\n```sh\n# not a heading\nrun it\n```\n";
        let chunks = chunk_text(text, ChunkOptions::default());
        assert_eq!(chunks.len(), 1);
        assert!(chunks[0].contains("# not a heading"));
    }

    #[test]
    fn long_sections_are_packed_within_size_with_overlap() {
        let paragraph = |i: usize| format!("Paragraph {i} says something useful about topic {i}.");
        let text = (0..40).map(paragraph).collect::<Vec<_>>().join("\n\n");
        let options = ChunkOptions {
            size: 200,
            overlap: 60,
        };
        let chunks = chunk_text(&text, options);
        assert!(chunks.len() > 5);
        for c in &chunks {
            assert!(c.chars().count() <= 200, "{c}");
        }
        // Every paragraph is in some chunk, and neighbours share their edge paragraph.
        for i in 0..40 {
            assert!(chunks.iter().any(|c| c.contains(&paragraph(i))));
        }
        let last_of_first = chunks[0].rsplit("\n\n").next().unwrap();
        assert!(chunks[1].starts_with(last_of_first));
    }

    #[test]
    fn long_chinese_paragraphs_split_at_sentence_ends() {
        let sentence = "退款会在五个工作日内原路退回到您的账户。";
        let text = sentence.repeat(30);
        let chunks = chunk_text(
            &text,
            ChunkOptions {
                size: 100,
                overlap: 0,
            },
        );
        assert!(chunks.len() >= 6);
        for c in &chunks {
            assert!(c.chars().count() <= 100);
            assert!(c.ends_with('。'), "{c}");
        }
    }

    #[test]
    fn a_sentence_longer_than_a_chunk_is_cut() {
        let text = "x".repeat(1000);
        let chunks = chunk_text(
            &text,
            ChunkOptions {
                size: 300,
                overlap: 0,
            },
        );
        assert_eq!(chunks.iter().map(|c| c.len()).sum::<usize>(), 1000);
        assert!(chunks.iter().all(|c| c.len() <= 300));
    }
}
