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

/// What to do for one trigger on a scheduler pass: the tick to fire (if any) given the last
/// recorded fire. A trigger seen for the first time records the current tick without firing
/// (a new node does not fire ticks from before it existed); ticks missed while the node was
/// down fire once (the latest), not once each.
pub fn due_tick(
    trigger: &TimeTrigger,
    last_fired: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let latest = trigger.latest_at_or_before(now);
    match (latest, last_fired) {
        (Some(l), Some(last)) if l > last => (Some(l), Some(l)),
        (Some(l), None) => (None, Some(l)),
        _ => (None, None),
    }
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
    fn fires_each_tick_once_and_missed_ticks_once() {
        let t = TimeTrigger::Every(Duration::seconds(10));
        let first = due_tick(&t, None, at("2026-03-15T14:30:07Z"));
        assert_eq!(first, (None, Some(at("2026-03-15T14:30:00Z"))));
        let mark = first.1;
        assert_eq!(due_tick(&t, mark, at("2026-03-15T14:30:09Z")), (None, None));
        let next = due_tick(&t, mark, at("2026-03-15T14:30:10Z"));
        assert_eq!(next.0, Some(at("2026-03-15T14:30:10Z")));
        // Down for a minute: one fire for the latest tick.
        let after_gap = due_tick(&t, next.1, at("2026-03-15T14:31:15Z"));
        assert_eq!(after_gap.0, Some(at("2026-03-15T14:31:10Z")));
    }
}
