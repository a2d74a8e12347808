//! Whether the process runs under continuous integration, where the test suites treat a missing
//! service or tool as a failure instead of a skip, and other on/off switches of the tests.

/// `CI` is set to anything but empty, `0` or `false` (any case): `CI=true`, `CI=1`, `CI=yes`.
pub fn under_ci() -> bool {
    env_flag("CI")
}

/// Whether the environment variable `name` is on: set to anything but empty, `0` or `false`
/// (so `OCLAW_UPDATE_GOLDEN=0` leaves the golden files alone).
pub fn env_flag(name: &str) -> bool {
    ci_value(std::env::var(name).ok().as_deref())
}

fn ci_value(v: Option<&str>) -> bool {
    v.map(str::trim)
        .is_some_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_value_but_empty_zero_or_false_is_ci() {
        for yes in ["true", "1", "yes", "TRUE", "woodpecker"] {
            assert!(ci_value(Some(yes)), "{yes}");
        }
        for no in [
            None,
            Some(""),
            Some("0"),
            Some("false"),
            Some("False"),
            Some(" "),
        ] {
            assert!(!ci_value(no), "{no:?}");
        }
    }
}
