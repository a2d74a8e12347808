//! Time triggers of a bot: cron expressions (5 fields, or 6 with seconds first) and fixed
//! intervals. Pure functions of time, so the scheduler's firing logic is testable.

use chrono::{DateTime, Duration, TimeZone, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use oclaw_core::bot::Trigger;

/// A parsed time trigger.
#[derive(Debug, Clone)]
pub enum TimeTrigger {
    Cron(Box<Cron>),
    Every(Duration),
}

pub fn parse_cron(expr: &str) -> Result<Cron, String> {
    let fields = expr.split_whitespace().count();
    if !(fields == 5 || fields == 6 || expr.trim_start().starts_with('@')) {
        return Err(format!("cron expression `{expr}` has {fields} fields; write 5 (minute hour day month weekday) or 6 (seconds first)"));
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(expr)
        .map_err(|e| format!("cron expression `{expr}` is invalid: {e}"))
}

impl TimeTrigger {
    /// The time trigger in a bot trigger, if it is one; errors for bad expressions.
    pub fn from_trigger(t: &Trigger) -> Result<Option<TimeTrigger>, String> {
        if let Some(expr) = &t.cron {
            return Ok(Some(TimeTrigger::Cron(Box::new(parse_cron(expr)?))));
        }
        if let Some(d) = t.every {
            if d.get() < std::time::Duration::from_secs(1) {
                return Err(format!("every: {d} is shorter than the 1s minimum"));
            }
            return Ok(Some(TimeTrigger::Every(
                Duration::from_std(d.get()).map_err(|e| e.to_string())?,
            )));
        }
        Ok(None)
    }

    /// The latest fire time at or before `now`.
    pub fn latest_at_or_before(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            TimeTrigger::Cron(c) => c.find_previous_occurrence(&now, true).ok(),
            TimeTrigger::Every(every) => {
                let step = every.num_milliseconds().max(1);
                let ms = now.timestamp_millis();
                Utc.timestamp_millis_opt(ms - ms.rem_euclid(step)).single()
            }
        }
    }

    /// The first fire time strictly after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            TimeTrigger::Cron(c) => c.find_next_occurrence(&now, false).ok(),
            TimeTrigger::Every(every) => self.latest_at_or_before(now).map(|t| t + *every),
        }
    }
}

/// Most missed ticks a trigger catches up on after a gap (the newest ones); older ones are skipped.
pub const MAX_CATCH_UP: usize = 10;

/// What to do for one trigger on a scheduler pass: the ticks to fire (oldest first) given the
/// last recorded fire, and the new mark. A trigger seen for the first time records the current
/// tick without firing (a new node does not fire ticks from before it existed). Ticks missed
/// since the mark (a scheduler failover, a short outage) each fire once, up to
/// [`MAX_CATCH_UP`] of the newest; a longer gap does not replay its whole backlog.
pub fn due_ticks(
    trigger: &TimeTrigger,
    last_fired: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> (Vec<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let Some(latest) = trigger.latest_at_or_before(now) else {
        return (Vec::new(), None);
    };
    let Some(last) = last_fired else {
        return (Vec::new(), Some(latest));
    };
    if latest <= last {
        return (Vec::new(), None);
    }
    let mut ticks = vec![latest];
    while ticks.len() < MAX_CATCH_UP {
        let before = ticks[ticks.len() - 1] - Duration::milliseconds(1);
        match trigger.latest_at_or_before(before) {
            Some(t) if t > last => ticks.push(t),
            _ => break,
        }
    }
    ticks.reverse();
    (ticks, Some(latest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn cron_five_and_six_fields() {
        let t = TimeTrigger::Cron(Box::new(parse_cron("*/5 * * * *").unwrap()));
        assert_eq!(
            t.latest_at_or_before(at("2026-03-15T14:32:10Z")),
            Some(at("2026-03-15T14:30:00Z"))
        );
        assert_eq!(
            t.next_after(at("2026-03-15T14:30:00Z")),
            Some(at("2026-03-15T14:35:00Z"))
        );
        let s = TimeTrigger::Cron(Box::new(parse_cron("*/10 * * * * *").unwrap()));
        assert_eq!(
            s.next_after(at("2026-03-15T14:30:01Z")),
            Some(at("2026-03-15T14:30:10Z"))
        );
        assert!(parse_cron("* * *").unwrap_err().contains("3 fields"));
        assert!(parse_cron("61 * * * *").unwrap_err().contains("invalid"));
        // Standard weekdays: 1 is Monday. 2026-03-16 is a Monday.
        let monday = TimeTrigger::Cron(Box::new(parse_cron("0 9 * * 1").unwrap()));
        assert_eq!(
            monday.next_after(at("2026-03-15T00:00:00Z")),
            Some(at("2026-03-16T09:00:00Z"))
        );
    }

    #[test]
    fn every_aligns_to_the_interval() {
        let t = TimeTrigger::Every(Duration::seconds(10));
        assert_eq!(
            t.latest_at_or_before(at("2026-03-15T14:30:07Z")),
            Some(at("2026-03-15T14:30:00Z"))
        );
        assert_eq!(
            t.next_after(at("2026-03-15T14:30:00Z")),
            Some(at("2026-03-15T14:30:10Z"))
        );
    }

    #[test]
    fn fires_each_tick_once_and_catches_up_on_missed_ticks() {
        let t = TimeTrigger::Every(Duration::seconds(10));
        let first = due_ticks(&t, None, at("2026-03-15T14:30:07Z"));
        assert_eq!(first, (vec![], Some(at("2026-03-15T14:30:00Z"))));
        let mark = first.1;
        assert_eq!(
            due_ticks(&t, mark, at("2026-03-15T14:30:09Z")),
            (vec![], None)
        );
        let next = due_ticks(&t, mark, at("2026-03-15T14:30:10Z"));
        assert_eq!(next.0, vec![at("2026-03-15T14:30:10Z")]);
        // A 25 s gap (say, a failover): the two missed ticks fire, each once.
        let after_gap = due_ticks(&t, next.1, at("2026-03-15T14:30:35Z"));
        assert_eq!(
            after_gap,
            (
                vec![at("2026-03-15T14:30:20Z"), at("2026-03-15T14:30:30Z")],
                Some(at("2026-03-15T14:30:30Z"))
            )
        );
        // Down for an hour: only the newest MAX_CATCH_UP ticks.
        let long = due_ticks(&t, after_gap.1, at("2026-03-15T15:30:35Z"));
        assert_eq!(long.0.len(), MAX_CATCH_UP);
        assert_eq!(long.0.last(), Some(&at("2026-03-15T15:30:30Z")));
        assert_eq!(long.0[0], at("2026-03-15T15:29:00Z"));
        // Cron works the same way.
        let c = TimeTrigger::Cron(Box::new(parse_cron("*/5 * * * *").unwrap()));
        let (ticks, _) = due_ticks(
            &c,
            Some(at("2026-03-15T14:30:00Z")),
            at("2026-03-15T14:41:00Z"),
        );
        assert_eq!(
            ticks,
            vec![at("2026-03-15T14:35:00Z"), at("2026-03-15T14:40:00Z")]
        );
    }
}
