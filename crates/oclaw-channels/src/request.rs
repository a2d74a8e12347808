//! The parts of an HTTP request the HTTP-borne channels (webhooks, chat platforms) look at, taken
//! apart once by the api-server's route so the channels need no HTTP framework.

use std::collections::HashMap;

/// An HTTP request as a channel reads it.
pub struct Request<'a> {
    pub method: &'a str,
    /// Header names in lower case.
    pub headers: &'a HashMap<String, String>,
    /// Query parameters, decoded.
    pub query: &'a HashMap<String, String>,
    pub body: &'a [u8],
    /// Unix seconds.
    pub now: i64,
}

impl Request<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The token of `Authorization: Bearer <token>`.
    pub fn bearer(&self) -> Option<&str> {
        self.header("authorization")
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
    }
}
