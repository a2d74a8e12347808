//! "Did you mean" suggestions for unknown names (config keys, skills, bots).

/// The closest candidate to `word`, if one is close enough to be a plausible typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word_lower = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| {
            (
                strsim::jaro_winkler(&word_lower, &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// `" (did you mean `x`?)"` or an empty string.
pub fn hint(word: &str, candidates: &[&str]) -> String {
    match did_you_mean(word, candidates.iter().copied()) {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => String::new(),
    }
}

/// `n` and the noun, plural unless `n` is one: "1 bot", "3 bots", "0 tasks".
pub fn counted(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_singular_only_for_one() {
        assert_eq!(counted(1u64, "bot"), "1 bot");
        assert_eq!(counted(0u64, "task"), "0 tasks");
        assert_eq!(counted(3u32, "bot"), "3 bots");
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("concurency", ["concurrency", "queues", "batch"]),
            Some("concurrency")
        );
        assert_eq!(
            did_you_mean("http.reqest", ["http.request", "log"]),
            Some("http.request")
        );
        assert_eq!(did_you_mean("zzz", ["concurrency", "queues"]), None);
    }
}
