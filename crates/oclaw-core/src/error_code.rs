//! The one catalogue of `OC-xxxx` error codes. Docs and API answers are generated from it.
//!
//! Ranges: `OC-1xxx` configuration, `OC-2xxx` API and input, `OC-3xxx` scheduling,
//! `OC-4xxx` execution and storage, `OC-5xxx` deployment and upgrade.

use serde::{Serialize, Serializer};

macro_rules! error_codes {
    ($( $variant:ident = ($code:literal, $status:literal, $title:literal) ),* $(,)?) => {
        /// Every error OpenClaw reports carries one of these codes.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode { $( $variant ),* }

        impl ErrorCode {
            /// All codes, in catalogue order.
            pub const ALL: &'static [ErrorCode] = &[ $( ErrorCode::$variant ),* ];

            /// The stable code, for example `OC-4001`.
            pub fn code(self) -> &'static str {
                match self { $( ErrorCode::$variant => $code ),* }
            }

            /// The HTTP status an API answer with this code uses.
            pub fn http_status(self) -> u16 {
                match self { $( ErrorCode::$variant => $status ),* }
            }

            /// A one-line description for the catalogue.
            pub fn title(self) -> &'static str {
                match self { $( ErrorCode::$variant => $title ),* }
            }
        }
    };
}

error_codes! {
    ConfigUnreadable = ("OC-1001", 500, "configuration file cannot be read"),
    ConfigSyntax = ("OC-1002", 500, "configuration file is not valid YAML"),
    ConfigUnknownKey = ("OC-1003", 500, "unknown configuration key"),
    ConfigInvalidValue = ("OC-1004", 500, "invalid configuration value"),
    BotInvalid = ("OC-1005", 500, "invalid bot definition"),
    BotUnknownSkill = ("OC-1006", 500, "bot step uses an unknown skill"),
    BotBadTemplate = ("OC-1007", 500, "bot template does not compile"),
    BotBadTrigger = ("OC-1008", 500, "bot trigger is invalid (cron expression or interval)"),
    ConfigBadEnvOverride = ("OC-1009", 500, "environment override names an unknown key or has a bad value"),
    MalformedBody = ("OC-2001", 400, "request body is not valid JSON"),
    InvalidField = ("OC-2002", 400, "request field is missing, unknown or has an invalid value"),
    UnknownBot = ("OC-2003", 404, "no bot with that name"),
    TaskNotFound = ("OC-2004", 404, "no task with that id"),
    QueueFull = ("OC-2005", 429, "queue is at capacity; retry later"),
    TaskStateConflict = ("OC-2006", 409, "the task's state does not allow this operation"),
    BodyTooLarge = ("OC-2007", 413, "request body is larger than the limit"),
    Unauthorized = ("OC-2008", 401, "missing or invalid bearer token"),
    BadCursor = ("OC-2009", 400, "pagination cursor is invalid"),
    NotFound = ("OC-2010", 404, "no such route"),
    MethodNotAllowed = ("OC-2011", 405, "the route does not accept this HTTP method"),
    WebhookUnauthorized = ("OC-2012", 401, "webhook signature or token missing, invalid, or outside the replay window"),
    ChannelNotEnabled = ("OC-2013", 404, "the bot has no trigger for this channel"),
    MalformedFrame = ("OC-2014", 400, "channel message or frame is malformed"),
    ClientTooSlow = ("OC-2015", 429, "the client does not read its replies; the session was closed"),
    ReplyTimeout = ("OC-2016", 504, "no reply within the bot's timeout; the task goes on"),
    QueueNotServed = ("OC-2017", 409, "no worker serves the queue on this node, so the task would never run"),
    ApprovalNotFound = ("OC-2018", 404, "no approval with that id"),
    ApprovalNotAllowed = ("OC-2019", 403, "the approver is not among those the approval names; the refusal is recorded"),
    ApprovalNotPending = ("OC-2020", 409, "the approval is decided or timed out already"),
    UnknownStep = ("OC-2021", 404, "the bot has no step with that id"),
    KbNotFound = ("OC-2022", 404, "no knowledge collection with that name"),
    KbDocumentNotFound = ("OC-2023", 404, "the collection has no document with that id"),
    KbExists = ("OC-2024", 409, "a knowledge collection with that name exists already"),
    KbBadDocument = ("OC-2025", 422, "the document cannot be read: malformed or unsupported file, not UTF-8, or empty"),
    KbEmbedderMismatch = ("OC-2026", 409, "the collection's vectors come from another embedder; vectors of two models do not compare"),
    Forbidden = ("OC-2027", 403, "the token's role does not allow this operation"),
    TokenNotFound = ("OC-2028", 404, "no API token with that id"),
    TenantQuota = ("OC-2029", 429, "the tenant is at its quota; retry later"),
    SecretsDisabled = ("OC-2030", 409, "the node has no secrets key (secrets.key or secrets.key_file)"),
    SecretNotFound = ("OC-2031", 404, "the tenant has no secret with that name"),
    ConversationNotFound = ("OC-2032", 404, "no handed-off conversation with that id"),
    ConversationNotHeld = ("OC-2033", 409, "the conversation is not taken over by an agent; take it first"),
    LeaseExpired = ("OC-3001", 500, "the task's lease expired before it finished"),
    TriggerFireFailed = ("OC-3002", 500, "a trigger could not enqueue its task"),
    StoreUnavailable = ("OC-4001", 503, "database connection timeout"),
    StoreCorrupt = ("OC-4002", 500, "database file is corrupt or not an OpenClaw database"),
    StoreSchemaTooNew = ("OC-4003", 500, "database schema is newer than this binary"),
    StoreDiskFull = ("OC-4004", 507, "disk is full; the write was not made"),
    StoreLocked = ("OC-4005", 503, "database is locked by another process"),
    StoreInternal = ("OC-4006", 500, "unexpected database error"),
    TaskTimeout = ("OC-4010", 500, "task exceeded its timeout"),
    SkillPanicked = ("OC-4011", 500, "skill panicked"),
    SkillInvalidInput = ("OC-4012", 500, "skill input is invalid"),
    SkillFailed = ("OC-4013", 500, "skill failed"),
    HttpRequestFailed = ("OC-4014", 502, "outbound HTTP request failed"),
    SsrfBlocked = ("OC-4015", 500, "outbound request to a private or loopback address refused"),
    TransformFailed = ("OC-4016", 500, "jq transform failed"),
    TemplateRender = ("OC-4017", 500, "template rendering failed"),
    BotMissing = ("OC-4018", 500, "the task's bot is not loaded on this node"),
    WorkerShutdown = ("OC-4019", 500, "worker shut down before the task finished"),
    ChannelUnavailable = ("OC-4020", 503, "a channel's broker or platform cannot be reached"),
    ChannelSendFailed = ("OC-4021", 502, "a reply could not be delivered on its channel"),
    PluginTimeout = ("OC-4022", 500, "a plugin or MCP tool call ran past its time or fuel limit"),
    PluginMemoryLimit = ("OC-4023", 500, "a plugin call grew its memory past its limit"),
    PluginCapabilityDenied = ("OC-4024", 500, "a plugin used a capability the bot did not grant"),
    PluginTrapped = ("OC-4025", 500, "a plugin trapped (crashed) during a call"),
    PluginBadOutput = ("OC-4026", 500, "a plugin or MCP tool returned output that is not valid JSON or does not match its schema"),
    PluginInvalid = ("OC-4027", 500, "a plugin is corrupt, not a plugin, or fails its digest check"),
    PluginUnavailable = ("OC-4028", 503, "a plugin or MCP server is not installed, not running, or not answering"),
    McpToolFailed = ("OC-4029", 500, "an MCP tool reported an error"),
    LlmUnavailable = ("OC-4030", 503, "no model provider of the chain answered: rate limited (429), failing (5xx), timed out or cooling down after repeated failures"),
    LlmBadResponse = ("OC-4031", 502, "the model's answer was cut off, malformed, or does not match the requested JSON Schema"),
    LlmRefused = ("OC-4032", 500, "the model provider refused the request (bad request, unknown model, authentication)"),
    AgentMaxTurns = ("OC-4033", 500, "the agent used its max_turns model turns without a final answer"),
    AgentTokenBudget = ("OC-4034", 500, "the agent's task spent its max_tokens budget"),
    AgentTimeout = ("OC-4035", 500, "the agent ran past its wall-clock bound (timeout, counted from its first turn, across attempts)"),
    LlmBudgetSpent = ("OC-4036", 500, "the bot's token budget (tokens_per_day or tokens_per_task) cannot hold another model call"),
    ForEachNotList = ("OC-4040", 500, "a step's for_each did not render to a list, or to more than 100,000 items"),
    WaitTimedOut = ("OC-4041", 500, "a wait step's event did not come before its timeout (on_timeout: fail)"),
    ChildTaskFailed = ("OC-4042", 500, "the child task of a bot.call step failed, died or was cancelled"),
    KbIngestFailed = ("OC-4043", 500, "a document could not be ingested: its URL cannot be fetched, its content cannot be read, or the embedder failed"),
    EmbedderUnavailable = ("OC-4044", 500, "the in-process embedding model cannot be loaded: missing or malformed weights, tokenizer or config"),
    ClusterInvalid = ("OC-5001", 500, "cluster file is invalid"),
    DriverUnavailable = ("OC-5002", 503, "the deployment driver cannot do this here (not built, or its platform unreachable)"),
    RolloutFailed = ("OC-5003", 500, "a revision did not become ready in time or its canary failed analysis; it was rolled back"),
    PodLogMissing = ("OC-5004", 404, "the pod has no such log: no previous run to show, or it has not started"),
    DatabaseUnavailable = ("OC-5005", 503, "the cluster's own PostgreSQL could not be made or started: its server binaries are missing, or it did not start (see its log)"),
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

impl std::str::FromStr for ErrorCode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ErrorCode::ALL
            .iter()
            .copied()
            .find(|c| c.code() == s)
            .ok_or_else(|| format!("unknown error code {s}"))
    }
}

/// The catalogue as a Markdown table (used by `oclaw docs error-codes` and the docs page).
pub fn catalogue_markdown() -> String {
    let mut out = String::from("| code | HTTP | meaning |\n|---|---|---|\n");
    for c in ErrorCode::ALL {
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            c.code(),
            c.http_status(),
            c.title()
        ));
    }
    out
}

/// An error with every cause beneath it, `outer: cause: root` — a client library's "error sending
/// request" says little until its cause (connection refused, DNS, TLS, timeout) is shown. A cause
/// whose text the line already holds is not repeated.
pub fn with_causes(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        next = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("error sending request for url (http://127.0.0.1:9/)")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn errors_show_their_causes_once() {
        let refused =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        assert_eq!(
            with_causes(&Outer(refused)),
            "error sending request for url (http://127.0.0.1:9/): Connection refused"
        );
        let plain = std::io::Error::other("disk full");
        assert_eq!(with_causes(&plain), "disk full");
    }

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert!(seen.insert(c.code()), "duplicate {}", c.code());
            assert!(c.code().starts_with("OC-") && c.code().len() == 7);
            assert_eq!(c.code().parse::<ErrorCode>().unwrap(), *c);
        }
        assert_eq!(ErrorCode::StoreUnavailable.code(), "OC-4001");
    }
}
