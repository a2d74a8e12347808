//! Text to full-text terms, the same for documents and queries on every store: words are
//! lowercased, English stop words dropped and the rest stemmed (Snowball English), so "refunds"
//! finds "refunded"; Chinese, Japanese and Korean text, written without spaces, becomes
//! overlapping character bigrams ("退款到账" → 退款 款到 到账), with a lone character kept as
//! itself. PostgreSQL's own parser does not segment CJK text, so both stores index these terms.

use std::sync::OnceLock;

use rust_stemmers::{Algorithm, Stemmer};

/// Longest word kept (longer ones are noise: hashes, base64).
const MAX_WORD: usize = 64;

const STOP_WORDS: &[&str] = &[
    "a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be",
    "been", "but", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has", "have",
    "he", "her", "his", "how", "i", "if", "in", "into", "is", "it", "its", "may", "me", "my", "no",
    "not", "of", "on", "or", "our", "she", "should", "so", "than", "that", "the", "their", "them",
    "then", "there", "these", "they", "this", "those", "to", "too", "us", "was", "we", "were",
    "what", "when", "where", "which", "who", "why", "will", "with", "would", "you", "your",
];

fn stemmer() -> &'static Stemmer {
    static STEMMER: OnceLock<Stemmer> = OnceLock::new();
    STEMMER.get_or_init(|| Stemmer::create(Algorithm::English))
}

/// Whether `c` is written without spaces between words (Han, kana, Hangul).
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x3040..=0x30FF      // Hiragana, Katakana
        | 0x3400..=0x4DBF    // CJK Extension A
        | 0x4E00..=0x9FFF    // CJK Unified Ideographs
        | 0xAC00..=0xD7AF    // Hangul syllables
        | 0x1100..=0x11FF    // Hangul Jamo
        | 0x3130..=0x318F    // Hangul compatibility Jamo
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0x20000..=0x2FA1F) // CJK Extensions B–F, compatibility supplement
}

fn push_word(word: &mut String, out: &mut Vec<String>) {
    if word.is_empty() {
        return;
    }
    let lower = word.to_lowercase();
    word.clear();
    if lower.chars().count() > MAX_WORD || STOP_WORDS.binary_search(&lower.as_str()).is_ok() {
        return;
    }
    let stem = if lower.is_ascii() {
        stemmer().stem(&lower).into_owned()
    } else {
        lower
    };
    out.push(stem);
}

fn push_cjk(run: &mut Vec<char>, out: &mut Vec<String>) {
    match run.len() {
        0 => {}
        1 => out.push(run[0].to_string()),
        _ => out.extend(run.windows(2).map(|w| w.iter().collect::<String>())),
    }
    run.clear();
}

/// The terms of `text`, in order (repeats kept: they count for ranking).
pub fn terms(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut run: Vec<char> = Vec::new();
    for c in text.chars() {
        if is_cjk(c) {
            push_word(&mut word, &mut out);
            run.push(c);
        } else if c.is_alphanumeric() {
            push_cjk(&mut run, &mut out);
            word.push(c);
        } else {
            push_word(&mut word, &mut out);
            push_cjk(&mut run, &mut out);
        }
    }
    push_word(&mut word, &mut out);
    push_cjk(&mut run, &mut out);
    out
}

/// The distinct terms of a query, in first-seen order.
pub fn query_terms(text: &str) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    terms(text)
        .into_iter()
        .filter(|t| seen.insert(t.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_words_are_sorted_for_binary_search() {
        let mut sorted = STOP_WORDS.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, STOP_WORDS);
    }

    #[test]
    fn english_words_are_lowercased_stemmed_and_stop_words_dropped() {
        assert_eq!(
            terms("How do I get my Refunds? Refunded orders, refunding."),
            ["get", "refund", "refund", "order", "refund"]
        );
        assert_eq!(terms("e-mail v2.1"), ["e", "mail", "v2", "1"]);
    }

    #[test]
    fn cjk_runs_become_bigrams_and_lone_characters_stay() {
        assert_eq!(terms("退款到账"), ["退款", "款到", "到账"]);
        assert_eq!(terms("A 书 B"), ["书", "b"]);
        // Mixed scripts split at the change of script.
        assert_eq!(terms("iPhone退货"), ["iphon", "退货"]);
        assert_eq!(
            terms("返品は可能ですか"),
            ["返品", "品は", "は可", "可能", "能で", "です", "すか"]
        );
        assert_eq!(terms("환불 정책"), ["환불", "정책"]);
    }

    #[test]
    fn query_terms_are_distinct() {
        assert_eq!(query_terms("refund refunds 退款 退款"), ["refund", "退款"]);
        assert!(query_terms("the of ... ?").is_empty());
    }
}
