//! What both backends' migration lists share: the test-only extra migration and the checks on
//! `min_compatible` (docs/migrations.md).

/// A migration's SQL and its `min_compatible`.
pub(crate) type Migration = (&'static str, i64);

/// The tests' extra migration: a table and a nullable column (SQL both backends take).
const TEST_NEXT: &str =
    "CREATE TABLE oclaw_next (id BIGINT); ALTER TABLE tasks ADD COLUMN next_note TEXT;";

/// `base`, and — only when `OCLAW_TEST_NEXT_SCHEMA=additive|breaking` is set — one more
/// migration, [`TEST_NEXT`] (`breaking` raises `min_compatible` to it), so the rollback tests run a later
/// release's schema without a second build. Not for production.
pub(crate) fn with_test_next(base: &[Migration]) -> Vec<Migration> {
    let mut all = base.to_vec();
    let last = all.last().map_or(1, |m| m.1);
    match std::env::var("OCLAW_TEST_NEXT_SCHEMA").as_deref() {
        Ok("additive") => all.push((TEST_NEXT, last)),
        Ok("breaking") => all.push((TEST_NEXT, all.len() as i64 + 1)),
        _ => {}
    }
    all
}

/// The oldest schema whose binaries run on the schema `all` leaves.
pub(crate) fn min_compatible(all: &[Migration]) -> i64 {
    all.last().map_or(1, |m| m.1)
}

/// `min_compatible` never goes down and never names a schema later than its migration's own.
#[cfg(test)]
pub(crate) fn assert_well_formed(all: &[Migration]) {
    let mut last = 0;
    for (i, (_, m)) in all.iter().enumerate() {
        assert!(*m >= last, "migration {} lowers min_compatible", i + 1);
        assert!(
            *m <= i as i64 + 1,
            "migration {} needs a later schema than its own",
            i + 1
        );
        last = *m;
    }
}
