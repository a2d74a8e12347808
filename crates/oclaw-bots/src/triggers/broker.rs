//! Broker triggers of bots: `mqtt: {topic, reply_topic, qos}` and `nats: {subject,
//! reply_subject}`. Parsed and checked when bots load; the node's channels serve them.

use serde::Deserialize;
use serde_json::Value;

/// A bot's MQTT trigger.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttTrigger {
    /// Topic filter to subscribe to (`+` and `#` wildcards).
    pub topic: String,
    /// Where the bot's reply is published; no reply when unset. `{topic}` stands for the
    /// message's topic (`{topic}/reply`).
    #[serde(default)]
    pub reply_topic: Option<String>,
    /// 1 (the default): a message is acknowledged to the broker only once its task is durable.
    /// 0: at most once.
    #[serde(default = "default_qos")]
    pub qos: u8,
}

fn default_qos() -> u8 {
    1
}

/// Whether an MQTT topic filter is well formed.
fn filter_ok(f: &str) -> bool {
    let levels: Vec<&str> = f.split('/').collect();
    !f.is_empty()
        && f.len() <= 65535
        && levels.iter().enumerate().all(|(i, l)| {
            (*l == "#" && i == levels.len() - 1)
                || *l == "+"
                || (!l.contains('#') && !l.contains('+'))
        })
}

/// Whether `topic` matches `filter`.
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return !topic.starts_with('$'),
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

impl MqttTrigger {
    pub fn parse(v: &Value) -> Result<MqttTrigger, String> {
        let t: MqttTrigger =
            serde_json::from_value(v.clone()).map_err(|e| format!("mqtt trigger: {e}"))?;
        if !filter_ok(&t.topic) {
            return Err(format!(
                "mqtt trigger: `{}` is not a topic filter (`+` is a whole level, `#` the last)",
                t.topic
            ));
        }
        if let Some(r) = &t.reply_topic {
            if r.is_empty() || r.contains(['+', '#']) {
                return Err(format!(
                    "mqtt trigger: reply_topic `{r}` must be a topic without wildcards"
                ));
            }
        }
        if t.qos > 1 {
            return Err("mqtt trigger: qos is 0 or 1".into());
        }
        Ok(t)
    }
}

/// A bot's NATS trigger: a JetStream durable consumer on `subject`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsTrigger {
    /// Subject (or filter with `*` and a final `>`) to consume.
    pub subject: String,
    /// Where the bot's reply is published; no reply when unset.
    #[serde(default)]
    pub reply_subject: Option<String>,
}

fn subject_ok(s: &str, wildcards: bool) -> bool {
    let tokens: Vec<&str> = s.split('.').collect();
    !s.is_empty()
        && tokens.iter().enumerate().all(|(i, t)| {
            !t.is_empty()
                && !t.contains(char::is_whitespace)
                && if wildcards {
                    (*t == ">" && i == tokens.len() - 1)
                        || *t == "*"
                        || (!t.contains('*') && !t.contains('>'))
                } else {
                    !t.contains('*') && !t.contains('>')
                }
        })
}

impl NatsTrigger {
    pub fn parse(v: &Value) -> Result<NatsTrigger, String> {
        let t: NatsTrigger =
            serde_json::from_value(v.clone()).map_err(|e| format!("nats trigger: {e}"))?;
        if !subject_ok(&t.subject, true) {
            return Err(format!(
                "nats trigger: `{}` is not a subject (dot-separated tokens; `*` a whole token, `>` the last)",
                t.subject
            ));
        }
        if let Some(r) = &t.reply_subject {
            if !subject_ok(r, false) {
                return Err(format!(
                    "nats trigger: reply_subject `{r}` must be a subject without wildcards"
                ));
            }
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn filters_parse_and_match() {
        let t =
            MqttTrigger::parse(&json!({"topic": "plant/+/temp", "reply_topic": "plant/alerts"}))
                .unwrap();
        assert_eq!(t.qos, 1);
        assert!(topic_matches("plant/+/temp", "plant/7/temp"));
        assert!(!topic_matches("plant/+/temp", "plant/7/hum"));
        assert!(!topic_matches("plant/+/temp", "plant/7/temp/x"));
        assert!(topic_matches("plant/#", "plant/7/temp"));
        assert!(topic_matches("plant/#", "plant"));
        assert!(!topic_matches("#", "$SYS/x"));
        for bad in ["", "a/#/b", "a/b+", "a#"] {
            assert!(
                MqttTrigger::parse(&json!({ "topic": bad })).is_err(),
                "{bad}"
            );
        }
        assert!(MqttTrigger::parse(&json!({"topic": "a", "reply_topic": "b/+"})).is_err());
        assert!(
            MqttTrigger::parse(&json!({"topic": "a/+", "reply_topic": "{topic}/reply"})).is_ok()
        );
        assert!(MqttTrigger::parse(&json!({"topic": "a", "qos": 2})).is_err());
        assert!(MqttTrigger::parse(&json!({"topic": "a", "colour": 1})).is_err());
    }

    #[test]
    fn nats_subjects() {
        let t = NatsTrigger::parse(
            &json!({"subject": "orders.created", "reply_subject": "orders.processed"}),
        )
        .unwrap();
        assert_eq!(t.reply_subject.as_deref(), Some("orders.processed"));
        assert!(NatsTrigger::parse(&json!({"subject": "orders.*.>"})).is_ok());
        for bad in ["", "a..b", "a.>.b", "a.b*", "a b"] {
            assert!(
                NatsTrigger::parse(&json!({ "subject": bad })).is_err(),
                "{bad}"
            );
        }
        assert!(NatsTrigger::parse(&json!({"subject": "a", "reply_subject": "b.*"})).is_err());
    }
}
