//! Read-ahead: a session's reader task follows the log and encodes each event into its
//! NATS message ahead of the publisher, through a bounded channel of chunks. Neither a
//! log read (a round trip per batch) nor building the headers then holds publishing up;
//! the channel keeps the order, and the reader never publishes anything itself.
//!
//! Two ways of reading, one at a time, each continuing from the last position the other
//! handed out: while there is a backlog the reader reads it itself in large batches with
//! [`LogReader`] (the next batch is read while this one is handed out); once a
//! batch comes back short it follows the store's live tail ([`Store::subscribe`], which
//! waits for appends), until the tail hands out a whole batch without waiting, which
//! means a backlog again.

use async_nats::jetstream::message::PublishMessage;
use futures_util::{FutureExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::log::LogReader;
use super::message::{self, Encoded};
use crate::store::Store;

/// An event encoded for publishing.
pub(super) struct Outgoing {
    pub(super) position: i64,
    pub(super) subject: String,
    pub(super) message: PublishMessage,
    /// The message's size as the NATS server counts it against `max_payload`.
    pub(super) size: usize,
}

impl From<Encoded> for Outgoing {
    fn from(encoded: Encoded) -> Self {
        let (position, size) = (encoded.position, encoded.size());
        let (subject, message) = encoded.into_message();
        Outgoing {
            position,
            subject,
            message,
            size,
        }
    }
}

/// Owns a task and aborts it when dropped, so a reader (or its read-ahead) never
/// outlives the session (or the aborted relay future) it reads for.
pub(super) struct Reader {
    task: JoinHandle<()>,
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Events per batch of the reader's own log reads.
pub const LOG_BATCH: i64 = 1000;

/// Events per message on the channel: the publisher takes them in chunks, so the two
/// tasks wake each other once per chunk rather than once per event.
pub(super) const CHUNK: usize = 128;

/// Starts reading the log of `store` after position `after` into a channel holding
/// about `read_ahead` encoded events for `prefix`, in chunks. The channel closes only
/// if the store's tail ends (it never does while the store lives).
pub(super) fn spawn(
    store: Store,
    after: i64,
    relay: String,
    prefix: String,
    read_ahead: usize,
) -> (mpsc::Receiver<Vec<Outgoing>>, Reader) {
    let (tx, rx) = mpsc::channel(read_ahead.div_ceil(CHUNK));
    let task = tokio::spawn(async move {
        let mut position = after;
        let mut log = LogReader::new(&store);
        loop {
            let Some(caught_up) = catch_up(&mut log, position, &relay, &prefix, &tx).await else {
                return;
            };
            let Some(behind) = follow(&store, caught_up, &relay, &prefix, &tx).await else {
                return;
            };
            position = behind;
        }
    });
    (rx, Reader { task })
}

/// Reads the log after `position` in batches of [`LOG_BATCH`] until one comes back
/// short, reading each next batch while the current one is handed out. Returns the
/// last position handed out, or `None` once the channel is closed.
async fn catch_up(
    log: &mut LogReader,
    position: i64,
    relay: &str,
    prefix: &str,
    tx: &mpsc::Sender<Vec<Outgoing>>,
) -> Option<i64> {
    let mut position = position;
    let mut batch = read(log, prefix, position, relay).await;
    loop {
        let full = batch.len() as i64 >= LOG_BATCH;
        if let Some(last) = batch.last() {
            position = last.position;
        }
        let handed_out = hand_out(tx, batch);
        if !full {
            return handed_out.await.then_some(position);
        }
        let (handed_out, next) = tokio::join!(handed_out, read(log, prefix, position, relay));
        if !handed_out {
            return None;
        }
        batch = next;
    }
}

/// One batch after `after`, read again from the same position until a read succeeds.
async fn read(log: &mut LogReader, prefix: &str, after: i64, relay: &str) -> Vec<Outgoing> {
    loop {
        match log.read_encoded(prefix, after, LOG_BATCH).await {
            Ok(batch) => return batch.into_iter().map(Outgoing::from).collect(),
            Err(err) => {
                tracing::warn!(relay = %relay, error = %err, "log read failed");
                tokio::time::sleep(log.idle_poll()).await;
            }
        }
    }
}

/// Sends `batch` in chunks; `false` once the channel is closed.
async fn hand_out(tx: &mpsc::Sender<Vec<Outgoing>>, batch: Vec<Outgoing>) -> bool {
    let mut events = batch.into_iter();
    loop {
        let chunk: Vec<Outgoing> = events.by_ref().take(CHUNK).collect();
        if chunk.is_empty() {
            return true;
        }
        if tx.send(chunk).await.is_err() {
            return false;
        }
    }
}

/// Follows the store's live tail after `position`, handing out chunks of the events it
/// has at hand, until it hands out [`LOG_BATCH`] events in a row without waiting (a
/// backlog: [`catch_up`] reads it faster). Returns the last position handed out then,
/// or `None` once the channel is closed or the tail ended.
async fn follow(
    store: &Store,
    position: i64,
    relay: &str,
    prefix: &str,
    tx: &mpsc::Sender<Vec<Outgoing>>,
) -> Option<i64> {
    let mut events = store.subscribe(position);
    let mut chunk = Vec::with_capacity(CHUNK);
    // Events handed out since the tail last made the reader wait.
    let mut run = 0i64;
    loop {
        let item = match events.next().now_or_never() {
            Some(item) => item,
            None => {
                // Nothing at hand: hand over what was read, then wait for more.
                run = 0;
                if !chunk.is_empty()
                    && tx
                        .send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)))
                        .await
                        .is_err()
                {
                    return None;
                }
                events.next().await
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
                return None;
            }
        };
        let position = event.position;
        chunk.push(Outgoing::from(message::encode_event(prefix, event)));
        run += 1;
        let behind = run >= LOG_BATCH;
        if (chunk.len() >= CHUNK || behind)
            && tx
                .send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)))
                .await
                .is_err()
        {
            return None;
        }
        if behind {
            return Some(position);
        }
    }
}
