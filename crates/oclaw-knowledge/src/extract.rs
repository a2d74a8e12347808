//! Documents to text: Markdown and plain text as they are (Markdown front matter dropped, its
//! `title:` kept), HTML to Markdown-like text (headings kept as `#` lines so chunks know their
//! section; scripts, styles and tags dropped; entities decoded). Binary files, PDF, text that is
//! not UTF-8 and empty documents are refused with a reason.

/// What kind of text a document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Markdown,
    Text,
    Html,
}

impl Format {
    /// From a file name or URL path and a `content-type`, else from the content.
    pub fn detect(name: Option<&str>, content_type: Option<&str>, bytes: &[u8]) -> Format {
        let ct = content_type.unwrap_or_default().to_ascii_lowercase();
        if ct.contains("html") {
            return Format::Html;
        }
        if ct.contains("markdown") {
            return Format::Markdown;
        }
        let ext = name
            .map(|n| n.split(['?', '#']).next().unwrap_or(n))
            .and_then(|n| n.rsplit_once('.'))
            .map(|(_, e)| e.to_ascii_lowercase());
        match ext.as_deref() {
            Some("html" | "htm" | "xhtml") => Format::Html,
            Some("txt" | "text" | "log" | "csv") => Format::Text,
            Some("md" | "markdown" | "mdx") => Format::Markdown,
            _ => {
                let head = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).to_lowercase();
                let head = head.trim_start();
                if head.starts_with("<!doctype html") || head.starts_with("<html") {
                    Format::Html
                } else {
                    Format::Markdown
                }
            }
        }
    }

    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "markdown" | "md" => Some(Format::Markdown),
            "text" | "txt" => Some(Format::Text),
            "html" => Some(Format::Html),
            _ => None,
        }
    }
}

/// A document's text and the title found in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    pub text: String,
    pub title: Option<String>,
}

/// The text of a document, or why it cannot be read.
pub fn extract(bytes: &[u8], format: Format) -> Result<Extracted, String> {
    if bytes.starts_with(b"%PDF") {
        return Err("PDF documents are not supported; convert it to text or Markdown first".into());
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.contains(&0) {
        return Err("the document is binary (it holds NUL bytes), not text".into());
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        format!(
            "the document is not UTF-8 text (invalid byte at offset {})",
            e.valid_up_to()
        )
    })?;
    let extracted = match format {
        Format::Html => html_to_text(text),
        Format::Markdown => markdown(text),
        Format::Text => Extracted {
            text: text.replace("\r\n", "\n"),
            title: None,
        },
    };
    if extracted.text.trim().is_empty() {
        return Err("the document has no text".into());
    }
    Ok(extracted)
}

fn markdown(text: &str) -> Extracted {
    let text = text.replace("\r\n", "\n");
    let mut title = None;
    let mut body = text.as_str();
    if let Some(rest) = text.strip_prefix("---\n") {
        if let Some(end) = rest.find("\n---\n") {
            for line in rest[..end].lines() {
                if let Some(t) = line.strip_prefix("title:") {
                    title = Some(t.trim().trim_matches(['"', '\'']).to_string());
                }
            }
            body = &rest[end + 5..];
        }
    }
    if title.is_none() {
        title = body
            .lines()
            .find_map(|l| l.strip_prefix("# "))
            .map(|t| t.trim().to_string());
    }
    Extracted {
        text: body.to_string(),
        title: title.filter(|t| !t.is_empty()),
    }
}

fn decode_entities(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let end = rest.find(';').filter(|e| *e <= 10);
        let decoded = end.and_then(|e| {
            let name = &rest[1..e];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" | "#39" => Some('\''),
                "nbsp" => Some(' '),
                _ => name
                    .strip_prefix("#x")
                    .or_else(|| name.strip_prefix("#X"))
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, e))
        });
        match decoded {
            Some((c, e)) => {
                out.push(c);
                rest = &rest[e + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// HTML to text with `#` headings; lenient with broken markup (an unclosed tag ends the text).
fn html_to_text(html: &str) -> Extracted {
    let mut out = String::new();
    let mut title: Option<String> = None;
    let mut first_h1: Option<String> = None;
    let mut skip: Option<String> = None; // inside script, style, head…
    let mut in_title = false;
    let mut heading: Option<String> = None; // text of the open h1–h6
    let mut rest = html;
    while !rest.is_empty() {
        if let Some(open) = skip.take() {
            // Raw text (a script's `<` is not a tag): jump to the closing tag.
            let close = format!("</{open}");
            let Some(at) = rest.to_ascii_lowercase().find(&close) else {
                break;
            };
            rest = &rest[at..];
            rest = rest.find('>').map(|e| &rest[e + 1..]).unwrap_or("");
            continue;
        }
        let Some(lt) = rest.find('<') else {
            push_text(
                rest,
                &mut out,
                &mut heading,
                skip.is_some(),
                in_title,
                &mut title,
            );
            break;
        };
        push_text(
            &rest[..lt],
            &mut out,
            &mut heading,
            skip.is_some(),
            in_title,
            &mut title,
        );
        rest = &rest[lt..];
        if rest.starts_with("<!--") {
            rest = rest.find("-->").map(|e| &rest[e + 3..]).unwrap_or("");
            continue;
        }
        let Some(gt) = rest.find('>') else { break };
        let tag = &rest[1..gt];
        rest = &rest[gt + 1..];
        let closing = tag.starts_with('/');
        let name: String = tag
            .trim_start_matches('/')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        match (name.as_str(), closing) {
            ("script" | "style" | "noscript" | "template" | "svg", false) => skip = Some(name),
            ("title", false) => in_title = true,
            ("title", true) => in_title = false,
            ("h1" | "h2" | "h3" | "h4" | "h5" | "h6", false) => heading = Some(String::new()),
            ("h1" | "h2" | "h3" | "h4" | "h5" | "h6", true) => {
                if let Some(text) = heading.take() {
                    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
                    if name == "h1" && first_h1.is_none() {
                        first_h1 = Some(text.clone());
                    }
                    let level = name[1..].parse::<usize>().unwrap_or(1);
                    out.push_str(&format!("\n\n{} {text}\n\n", "#".repeat(level)));
                }
            }
            ("li", false) => out.push_str("\n- "),
            ("br", _) => out.push('\n'),
            (
                "p" | "div" | "section" | "article" | "ul" | "ol" | "table" | "tr" | "blockquote"
                | "pre" | "header" | "footer" | "main" | "dl" | "dt" | "dd",
                _,
            ) => out.push_str("\n\n"),
            ("td" | "th", _) => out.push(' '),
            _ => {}
        }
    }
    // Collapse the runs of blank lines and spaces the tags left.
    let mut text = String::new();
    let mut blank = 0;
    for line in out.lines() {
        let line = line.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.is_empty() {
            blank += 1;
            continue;
        }
        if !text.is_empty() {
            text.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        text.push_str(&line);
    }
    Extracted {
        text,
        title: title
            .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|t| !t.is_empty())
            .or(first_h1),
    }
}

fn push_text(
    raw: &str,
    out: &mut String,
    heading: &mut Option<String>,
    skipped: bool,
    in_title: bool,
    title: &mut Option<String>,
) {
    if skipped || raw.is_empty() {
        return;
    }
    let text = decode_entities(raw);
    if in_title {
        title.get_or_insert_with(String::new).push_str(&text);
    } else if let Some(h) = heading {
        h.push_str(&text);
    } else {
        out.push_str(&text);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_come_from_names_types_and_content() {
        assert_eq!(Format::detect(Some("a/b.HTML"), None, b""), Format::Html);
        assert_eq!(
            Format::detect(Some("https://x/y.md?z=1"), None, b""),
            Format::Markdown
        );
        assert_eq!(Format::detect(Some("notes.txt"), None, b""), Format::Text);
        assert_eq!(
            Format::detect(Some("https://x/"), Some("text/html; charset=utf-8"), b""),
            Format::Html
        );
        assert_eq!(
            Format::detect(None, None, b"<!DOCTYPE html><p>x"),
            Format::Html
        );
        assert_eq!(Format::detect(None, None, b"# Title"), Format::Markdown);
    }

    #[test]
    fn html_becomes_text_with_headings_and_no_scripts() {
        let html = r#"<!doctype html><html><head><title>Shipping &amp; returns</title>
            <style>p { color: red }</style><script>alert("x < y")</script></head>
            <body><h1>Returns</h1><p>Refunds take <b>five</b>&nbsp;days.</p>
            <ul><li>Keep the receipt</li><li>Use the label</li></ul>
            <h2>Fees</h2><p>No fee &#8212; ever. &#x4E2D;&bogus; & more</p><!-- hidden --></body></html>"#;
        let e = extract(html.as_bytes(), Format::Html).unwrap();
        assert_eq!(e.title.as_deref(), Some("Shipping & returns"));
        assert_eq!(
            e.text,
            "# Returns\n\nRefunds take five days.\n\n- Keep the receipt\n- Use the label\n\n## Fees\n\nNo fee — ever. 中&bogus; & more"
        );
    }

    #[test]
    fn markdown_front_matter_gives_the_title() {
        let e = extract(
            b"---\ntitle: \"Refund policy\"\nlang: en\n---\n# Refunds\nBody\n",
            Format::Markdown,
        )
        .unwrap();
        assert_eq!(e.title.as_deref(), Some("Refund policy"));
        assert_eq!(e.text, "# Refunds\nBody\n");
        let e = extract(b"intro\n# Heading one\ntext", Format::Markdown).unwrap();
        assert_eq!(e.title.as_deref(), Some("Heading one"));
    }

    #[test]
    fn unreadable_documents_are_refused_with_a_reason() {
        assert!(extract(b"%PDF-1.7 ...", Format::Markdown)
            .unwrap_err()
            .contains("PDF"));
        assert!(extract(b"ab\0cd", Format::Text)
            .unwrap_err()
            .contains("binary"));
        assert!(extract(b"caf\xe9", Format::Text)
            .unwrap_err()
            .contains("UTF-8"));
        assert!(extract(b"  \n ", Format::Text)
            .unwrap_err()
            .contains("no text"));
        assert!(extract(b"<script>x</script>", Format::Html)
            .unwrap_err()
            .contains("no text"));
        // A byte-order mark is not text.
        assert_eq!(extract(b"\xEF\xBB\xBFhi", Format::Text).unwrap().text, "hi");
    }
}
