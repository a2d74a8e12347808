//! Chat-platform triggers of bots: `slack`, `telegram`, `feishu`, `dingtalk`, `wecom`. Each is a
//! webhook under `/hooks/` checked the way its platform signs requests, with the credentials
//! to send the reply back through the platform's API. Every secret may be a template over
//! `secrets` (`"{{ secrets.SLACK_SIGNING_SECRET }}"`). Parsed and checked when bots load.

use serde::Deserialize;
use serde_json::Value;

/// Which platform a trigger is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlatformKind {
    Slack,
    Telegram,
    Feishu,
    DingTalk,
    WeCom,
}

impl PlatformKind {
    pub fn name(self) -> &'static str {
        match self {
            PlatformKind::Slack => "slack",
            PlatformKind::Telegram => "telegram",
            PlatformKind::Feishu => "feishu",
            PlatformKind::DingTalk => "dingtalk",
            PlatformKind::WeCom => "wecom",
        }
    }
}

/// Slack Events API: signed with the app's signing secret; replies by `chat.postMessage`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackSettings {
    pub path: String,
    pub signing_secret: String,
    pub bot_token: String,
    #[serde(default = "slack_api")]
    pub api_base: String,
}

/// Telegram Bot API webhook: `secret_token` as set with `setWebhook`; replies by `sendMessage`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelegramSettings {
    pub path: String,
    pub secret_token: String,
    pub bot_token: String,
    #[serde(default = "telegram_api")]
    pub api_base: String,
}

/// Feishu/Lark event subscription: verification token, optional encrypt key (encrypted bodies
/// and signed requests); replies through the IM API with the app's tenant token.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeishuSettings {
    pub path: String,
    pub verification_token: String,
    #[serde(default)]
    pub encrypt_key: Option<String>,
    pub app_id: String,
    pub app_secret: String,
    /// `https://open.feishu.cn` (Feishu) or `https://open.larksuite.com` (Lark).
    #[serde(default = "feishu_api")]
    pub api_base: String,
}

/// DingTalk robot callbacks (outgoing robot): `timestamp` + `sign` headers with the app secret;
/// replies to the message's session webhook, which must be under `api_base`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DingTalkSettings {
    pub path: String,
    pub app_secret: String,
    #[serde(default = "dingtalk_api")]
    pub api_base: String,
}

/// WeCom (WeChat Work) robot/app callbacks: token + EncodingAESKey (`msg_signature` and
/// encrypted bodies); replies through the group robot webhook when `webhook_key` is set.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeComSettings {
    pub path: String,
    pub token: String,
    pub encoding_aes_key: String,
    #[serde(default)]
    pub webhook_key: Option<String>,
    #[serde(default = "wecom_api")]
    pub api_base: String,
}

fn slack_api() -> String {
    "https://slack.com".into()
}
fn telegram_api() -> String {
    "https://api.telegram.org".into()
}
fn feishu_api() -> String {
    "https://open.feishu.cn".into()
}
fn dingtalk_api() -> String {
    "https://oapi.dingtalk.com".into()
}
fn wecom_api() -> String {
    "https://qyapi.weixin.qq.com".into()
}

/// A platform trigger with its settings.
#[derive(Debug, Clone, PartialEq)]
pub enum PlatformTrigger {
    Slack(SlackSettings),
    Telegram(TelegramSettings),
    Feishu(FeishuSettings),
    DingTalk(DingTalkSettings),
    WeCom(WeComSettings),
}

impl PlatformTrigger {
    pub fn kind(&self) -> PlatformKind {
        match self {
            PlatformTrigger::Slack(_) => PlatformKind::Slack,
            PlatformTrigger::Telegram(_) => PlatformKind::Telegram,
            PlatformTrigger::Feishu(_) => PlatformKind::Feishu,
            PlatformTrigger::DingTalk(_) => PlatformKind::DingTalk,
            PlatformTrigger::WeCom(_) => PlatformKind::WeCom,
        }
    }

    pub fn path(&self) -> &str {
        match self {
            PlatformTrigger::Slack(s) => &s.path,
            PlatformTrigger::Telegram(s) => &s.path,
            PlatformTrigger::Feishu(s) => &s.path,
            PlatformTrigger::DingTalk(s) => &s.path,
            PlatformTrigger::WeCom(s) => &s.path,
        }
    }

    fn api_base(&self) -> &str {
        match self {
            PlatformTrigger::Slack(s) => &s.api_base,
            PlatformTrigger::Telegram(s) => &s.api_base,
            PlatformTrigger::Feishu(s) => &s.api_base,
            PlatformTrigger::DingTalk(s) => &s.api_base,
            PlatformTrigger::WeCom(s) => &s.api_base,
        }
    }

    /// Parses and checks the value of a `kind:` trigger.
    pub fn parse(kind: PlatformKind, v: &Value) -> Result<PlatformTrigger, String> {
        let name = kind.name();
        let err = |e: serde_json::Error| format!("{name} trigger: {e}");
        let t = match kind {
            PlatformKind::Slack => {
                PlatformTrigger::Slack(serde_json::from_value(v.clone()).map_err(err)?)
            }
            PlatformKind::Telegram => {
                PlatformTrigger::Telegram(serde_json::from_value(v.clone()).map_err(err)?)
            }
            PlatformKind::Feishu => {
                PlatformTrigger::Feishu(serde_json::from_value(v.clone()).map_err(err)?)
            }
            PlatformKind::DingTalk => {
                PlatformTrigger::DingTalk(serde_json::from_value(v.clone()).map_err(err)?)
            }
            PlatformKind::WeCom => {
                PlatformTrigger::WeCom(serde_json::from_value(v.clone()).map_err(err)?)
            }
        };
        crate::triggers::webhook::check_hook_path(t.path())
            .map_err(|m| format!("{name} trigger: {m}"))?;
        let base =
            url::Url::parse(t.api_base()).map_err(|e| format!("{name} trigger: api_base: {e}"))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(format!("{name} trigger: api_base must be an http(s) URL"));
        }
        if let PlatformTrigger::WeCom(w) = &t {
            if !w.encoding_aes_key.contains("{{") && w.encoding_aes_key.len() != 43 {
                return Err(
                    "wecom trigger: encoding_aes_key is the 43-character key WeCom shows".into(),
                );
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
    fn parses_and_checks() {
        let t = PlatformTrigger::parse(
            PlatformKind::Slack,
            &json!({"path": "/hooks/slack", "signing_secret": "s", "bot_token": "xoxb-1"}),
        )
        .unwrap();
        assert_eq!(t.kind().name(), "slack");
        assert!(matches!(&t, PlatformTrigger::Slack(s) if s.api_base == "https://slack.com"));
        assert!(PlatformTrigger::parse(
            PlatformKind::Slack,
            &json!({"path": "/hooks/slack", "signing_secret": "s"})
        )
        .is_err());
        assert!(PlatformTrigger::parse(
            PlatformKind::Telegram,
            &json!({"path": "/tg", "secret_token": "s", "bot_token": "1:x"})
        )
        .is_err());
        assert!(PlatformTrigger::parse(
            PlatformKind::WeCom,
            &json!({"path": "/hooks/w", "token": "t", "encoding_aes_key": "short"})
        )
        .is_err());
        assert!(PlatformTrigger::parse(
            PlatformKind::DingTalk,
            &json!({"path": "/hooks/d", "app_secret": "x", "api_base": "ftp://x"})
        )
        .is_err());
    }
}
