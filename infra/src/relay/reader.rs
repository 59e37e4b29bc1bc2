//! Read-ahead: a session's reader task follows the log and encodes each event into its
//! NATS message ahead of the publisher, through a bounded channel of chunks. Neither a tail read
//! (a round trip per batch) nor building the headers then holds publishing up; the
//! channel keeps the order, and the reader never publishes anything itself.

use async_nats::jetstream::message::PublishMessage;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::message;
use crate::store::EventStream;

/// An event encoded for publishing.
pub(super) struct Outgoing {
    pub(super) position: i64,
    pub(super) subject: String,
    pub(super) message: PublishMessage,
    /// The message's size as the NATS server counts it against `max_payload`.
    pub(super) size: usize,
}

/// Owns the reader task and aborts it when dropped, so a reader never outlives the
/// session (or the aborted relay future) it reads for.
pub(super) struct Reader {
    task: JoinHandle<()>,
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Events per message on the channel: the publisher takes them in chunks, so the two
/// tasks wake each other once per chunk rather than once per event.
pub(super) const CHUNK: usize = 128;

/// Starts reading `events` into a channel holding about `read_ahead` encoded events for
/// `prefix`, in chunks of those the tail has at hand. The channel closes only if the
/// tail ends (it never does while the store lives).
pub(super) fn spawn(
    mut events: EventStream,
    relay: String,
    prefix: String,
    read_ahead: usize,
) -> (mpsc::Receiver<Vec<Outgoing>>, Reader) {
    let (tx, rx) = mpsc::channel(read_ahead.div_ceil(CHUNK));
    let task = tokio::spawn(async move {
        // Waits for the first event of a chunk; takes more only while they are ready.
        let mut waiting = true;
        let mut chunk = Vec::with_capacity(CHUNK);
        loop {
            let item = if waiting {
                events.next().await
            } else {
                match events.next().now_or_never() {
                    Some(item) => item,
                    None => {
                        if tx.send(std::mem::take(&mut chunk)).await.is_err() {
                            return;
                        }
                        chunk.reserve(CHUNK);
                        waiting = true;
                        continue;
                    }
                }
            };
            let event = match item {
                Some(Ok(event)) => event,
                // The tail retries by itself from the same position.
                Some(Err(err)) => {
                    tracing::warn!(relay = %relay, error = %err, "log tail read failed");
                    continue;
                }
                None => {
                    // Hand over what was read; dropping `tx` then closes the channel.
                    let _ = tx.send(chunk).await;
                    return;
                }
            };
            let position = event.position;
            let (subject, message, size) = message::encode_sized(&prefix, event);
            chunk.push(Outgoing {
                position,
                subject,
                message,
                size,
            });
            waiting = false;
            if chunk.len() >= CHUNK {
                if tx.send(std::mem::take(&mut chunk)).await.is_err() {
                    return;
                }
                chunk.reserve(CHUNK);
                waiting = true;
            }
        }
    });
    (rx, Reader { task })
}
