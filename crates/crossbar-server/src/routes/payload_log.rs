//! Payload logs for routes with `payload_log = true`: the request as it was sent upstream
//! (after the guardrails' masking and a webhook's rewrite) and the answer as the client got it,
//! kept with the usage record's request id. Whatever the route's rules, anything shaped like a
//! secret (provider keys, tokens, private keys) is masked before it is written; headers are
//! never part of it. Written in the background when the request is done (dropped), so a
//! failed or cut request still leaves its request body.

use std::sync::Arc;

use crossbar_core::ChatStream;
use crossbar_core::cache::Assembler;
use crossbar_core::chat::{ChatRequest, ChatResponse};
use crossbar_core::guardrails::{Action, Detector, Rules, Verdict};
use crossbar_core::router::Policies;
use crossbar_store::{PayloadRecord, PayloadStore, now_ms};
use futures::StreamExt;

/// The largest streamed answer assembled for the log; a longer one is logged without it.
const MAX_STREAMED_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// One request's log, written when dropped.
pub(crate) struct PayloadLog {
    store: Arc<dyn PayloadStore>,
    record: PayloadRecord,
}

impl PayloadLog {
    /// A log for `request` if its route keeps payloads and the gateway has a store.
    pub(crate) fn new(
        store: Option<&Arc<dyn PayloadStore>>,
        policies: &Policies,
        request: &ChatRequest,
        request_id: Option<String>,
        key_id: Option<&str>,
    ) -> Option<Self> {
        if !policies.payload_log {
            return None;
        }
        let store = Arc::clone(store?);
        Some(Self {
            store,
            record: PayloadRecord {
                request_id: request_id?,
                time_ms: now_ms(),
                key_id: key_id.map(str::to_owned),
                route: Some(policies.route.clone()),
                request: masked_json(request)?,
                answer: None,
            },
        })
    }

    /// The answer the client got.
    pub(crate) fn answer(&mut self, answer: &ChatResponse) {
        self.record.answer = masked_json(answer);
    }

    /// Passes a stream through, logging the answer it carried once it ends cleanly.
    pub(crate) fn streaming(mut self, mut events: ChatStream) -> ChatStream {
        Box::pin(async_stream::stream! {
            let mut answer = Assembler::new(MAX_STREAMED_ANSWER_BYTES);
            while let Some(event) = events.next().await {
                match event {
                    Ok(event) => {
                        answer.observe(&event);
                        yield Ok(event);
                    }
                    Err(error) => {
                        yield Err(error);
                        return;
                    }
                }
            }
            if let Some(answer) = answer.finish() {
                self.answer(&answer);
            }
        })
    }
}

impl Drop for PayloadLog {
    fn drop(&mut self) {
        let store = Arc::clone(&self.store);
        let record = PayloadRecord {
            request: std::mem::take(&mut self.record.request),
            answer: self.record.answer.take(),
            request_id: std::mem::take(&mut self.record.request_id),
            key_id: self.record.key_id.take(),
            route: self.record.route.take(),
            time_ms: self.record.time_ms,
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        runtime.spawn(async move {
            if let Err(error) = store.put_payload(&record).await {
                tracing::warn!(request_id = %record.request_id, "payload log not written: {error}");
            }
        });
    }
}

/// `value` as JSON with every secret masked, whatever the route's own rules: a key pasted
/// into a prompt never reaches the log in clear.
fn masked_json(value: &impl serde::Serialize) -> Option<String> {
    static SECRETS: std::sync::LazyLock<Rules> =
        std::sync::LazyLock::new(|| Rules::detectors([(Detector::Secret, Action::Mask)]));
    let text = serde_json::to_string(value).ok()?;
    Some(match SECRETS.check(&text) {
        Verdict::Pass { text: masked, .. } => masked.into_owned(),
        // Mask never blocks; were it to, nothing is better than the text.
        Verdict::Block { .. } => return None,
    })
}
