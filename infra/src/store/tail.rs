//! The live tail of the global log: read a batch, hand it out, wait for a wake-up
//! (PostgreSQL LISTEN/NOTIFY or the in-process append signal) or the idle poll. After a
//! full batch the next one is read while this one is handed out, so a reader catching
//! up on a backlog does not wait a round trip per batch.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use futures_util::Stream;
use sqlx::postgres::PgListener;
use tokio::sync::watch;

use super::{postgres, Backend, RecordedEvent, Store, StoreError};

/// An endless, ordered stream of recorded events. An `Err` item reports a failed read;
/// the stream goes on (after a pause) from the same position.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<RecordedEvent, StoreError>> + Send>>;

enum Wake {
    Postgres(PgListener),
    Local(watch::Receiver<i64>),
}

impl Wake {
    async fn new(store: &Store) -> Result<Self, StoreError> {
        Ok(match &store.inner.backend {
            Backend::Postgres(pool) => {
                let mut listener = PgListener::connect_with(pool).await?;
                listener.listen(postgres::CHANNEL).await?;
                Wake::Postgres(listener)
            }
            Backend::Sqlite(_) => Wake::Local(store.appended_rx()),
        })
    }

    /// Marks everything signalled so far as seen: call before reading.
    fn arm(&mut self) {
        if let Wake::Local(rx) = self {
            rx.borrow_and_update();
        }
    }

    /// Waits for a signal or `idle`, whichever comes first. `Err` means the listener's
    /// connection broke and it must be rebuilt.
    async fn wait(&mut self, idle: Duration) -> Result<(), StoreError> {
        match self {
            Wake::Postgres(listener) => match tokio::time::timeout(idle, listener.recv()).await {
                Ok(Err(e)) => Err(e.into()),
                _ => Ok(()),
            },
            Wake::Local(rx) => {
                let _ = tokio::time::timeout(idle, rx.changed()).await;
                Ok(())
            }
        }
    }
}

/// A read of the batch that follows the buffer, started while the buffer is handed out.
enum Ahead {
    Reading(Pin<Box<dyn Future<Output = Result<Vec<RecordedEvent>, StoreError>> + Send>>),
    Done(Result<Vec<RecordedEvent>, StoreError>),
}

struct Tail {
    store: Store,
    checkpoint: i64,
    buffer: VecDeque<RecordedEvent>,
    ahead: Option<Ahead>,
    wake: Option<Wake>,
    failed: bool,
}

pub(super) fn subscribe(store: Store, after_position: i64) -> EventStream {
    let tail = Tail {
        store,
        checkpoint: after_position,
        buffer: VecDeque::new(),
        ahead: None,
        wake: None,
        failed: false,
    };
    Box::pin(futures_util::stream::unfold(tail, |mut tail| async move {
        let item = tail.next().await;
        Some((item, tail))
    }))
}

impl Tail {
    async fn next(&mut self) -> Result<RecordedEvent, StoreError> {
        let idle = self.store.config().idle_poll;
        let limit = self.store.config().tail_batch;
        if self.failed {
            self.failed = false;
            tokio::time::sleep(idle).await;
        }
        loop {
            if let Some(event) = self.buffer.pop_front() {
                // Drive the read-ahead a step each time an event is handed out, so the
                // next batch is on its way (or here) when the buffer runs dry.
                if let Some(Ahead::Reading(read)) = &mut self.ahead {
                    let step = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx)));
                    if let Poll::Ready(result) = step.await {
                        self.ahead = Some(Ahead::Done(result));
                    }
                }
                self.checkpoint = event.position;
                return Ok(event);
            }
            // The wake-up source exists before the read, so nothing that commits after
            // the read can go unnoticed. (A read-ahead is only started once it exists.)
            if self.wake.is_none() {
                self.wake = Some(Wake::new(&self.store).await.inspect_err(|_| {
                    self.failed = true;
                })?);
            }
            let wake = self.wake.as_mut().expect("wake set above");
            let batch = match self.ahead.take() {
                Some(Ahead::Done(result)) => result,
                Some(Ahead::Reading(read)) => read.await,
                None => {
                    wake.arm();
                    self.store.read_all(self.checkpoint, limit).await
                }
            }
            .inspect_err(|_| self.failed = true)?;
            if batch.is_empty() {
                if let Err(e) = wake.wait(idle).await {
                    self.wake = None;
                    self.failed = true;
                    return Err(e);
                }
            } else {
                // A full batch says more is likely waiting: read it while this one is
                // handed out. It starts from this batch's end, where the reader will be
                // when the buffer runs dry, so order and completeness are unchanged.
                if batch.len() as i64 >= limit {
                    let store = self.store.clone();
                    let after = batch.last().map_or(self.checkpoint, |e| e.position);
                    self.ahead = Some(Ahead::Reading(Box::pin(async move {
                        store.read_all(after, limit).await
                    })));
                }
                self.buffer.extend(batch);
            }
        }
    }
}
