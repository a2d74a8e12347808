//! Telegram Bot API webhooks. The webhook is registered with `setWebhook(secret_token=...)`;
//! Telegram then sends it in `X-Telegram-Bot-Api-Secret-Token` on every update. Messages with
//! text become messages (the conversation is the chat); `update_id` keys the task. Replies:
//! `POST {api_base}/bot<token>/sendMessage`.

use oclaw_bots::triggers::platform::TelegramSettings;
use serde_json::{json, Value};

use super::{json_body, malformed, secret, text_of, unauthorized, Ingress, Refusal, Request};
use crate::Inbound;

pub fn ingress(s: &TelegramSettings, req: &Request<'_>) -> Result<Ingress, Refusal> {
    let given = req
        .header("x-telegram-bot-api-secret-token")
        .ok_or_else(|| unauthorized("missing X-Telegram-Bot-Api-Secret-Token"))?;
    let expected = secret(&s.secret_token, "secret_token")?;
    if !crate::constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(unauthorized(
            "X-Telegram-Bot-Api-Secret-Token does not match",
        ));
    }
    let v = json_body(req.body)?;
    let update_id = v["update_id"]
        .as_i64()
        .ok_or_else(|| malformed("an update has an update_id"))?;
    let Some(msg) = v.get("message").filter(|m| m.is_object()) else {
        return Ok(Ingress::Ignore("an update without a new message".into()));
    };
    let chat = text_of(&msg["chat"]["id"]).ok_or_else(|| malformed("message has no chat.id"))?;
    let Some(text) = msg["text"].as_str() else {
        return Ok(Ingress::Ignore("a message without text".into()));
    };
    let mut m = Inbound::new("telegram");
    m.conversation = Some(chat.clone());
    m.user = text_of(&msg["from"]["id"]);
    m.text = Some(text.to_string());
    m.data = v.clone();
    m.idempotency_key = Some(format!("telegram:{update_id}"));
    Ok(Ingress::Message {
        inbound: Box::new(m),
        reply_to: json!({"chat_id": msg["chat"]["id"], "reply_to_message_id": msg["message_id"]}),
    })
}

pub async fn send(s: &TelegramSettings, to: &Value, text: &str) -> Result<(), String> {
    let token = crate::resolve_secret(&s.bot_token)?;
    let url = format!(
        "{}/bot{token}/sendMessage",
        s.api_base.trim_end_matches('/')
    );
    let mut body = json!({"chat_id": to["chat_id"], "text": text});
    if !to["reply_to_message_id"].is_null() {
        body["reply_to_message_id"] = to["reply_to_message_id"].clone();
    }
    let v = super::post_json(&url, None, &body)
        .await
        // The URL holds the bot token: never let it into an error message.
        .map_err(|e| e.replace(&token, "<token>"))?;
    if v["ok"] == true {
        Ok(())
    } else {
        Err(format!(
            "sendMessage: {}",
            v["description"].as_str().unwrap_or("not ok")
        ))
    }
}
