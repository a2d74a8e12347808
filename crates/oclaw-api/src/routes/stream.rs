//! `GET /v1/stream`: Server-Sent Events for the console — an `overview` event (the nodes and
//! the queues the caller may see) at once and every two seconds, so pages stay live without
//! reloading.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Extension;
use futures_util::Stream;
use serde_json::{json, Value};

use crate::auth::Principal;
use crate::ApiState;

const EVERY: Duration = Duration::from_secs(2);

pub async fn stream(
    State(state): State<ApiState>,
    Extension(who): Extension<Principal>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events =
        futures_util::stream::unfold((state, who, true), |(mut state, who, first)| async move {
            if *state.stopping.borrow() {
                return None;
            }
            if !first {
                // The node stopping ends the stream, so it does not hold the shutdown.
                tokio::select! {
                    _ = tokio::time::sleep(EVERY) => {}
                    _ = crate::state::stopped(&mut state.stopping) => return None,
                }
            }
            let data = overview(&state, &who).await;
            let event = Event::default().event("overview").data(data.to_string());
            Some((Ok(event), (state, who, false)))
        });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// The nodes and queues, or what kept them from being read.
async fn overview(state: &ApiState, who: &Principal) -> Value {
    let nodes = super::cluster::nodes(State(state.clone())).await;
    let queues = super::queues::list(State(state.clone()), Extension(who.clone())).await;
    let error = |e: &crate::ApiError| json!({"code": e.code.code(), "message": e.message});
    json!({
        "at": chrono::Utc::now(),
        "nodes": nodes.as_ref().map(|j| j.0["items"].clone()).unwrap_or(Value::Null),
        "queues": queues.as_ref().map(|j| j.0["items"].clone()).unwrap_or(Value::Null),
        "error": nodes.as_ref().err().or(queues.as_ref().err()).map(error),
    })
}
