//! The live tail of the global log: read a batch, hand it out, wait for a wake-up
//! (PostgreSQL LISTEN/NOTIFY or the in-process append signal) or the idle poll.

use std::collections::VecDeque;
use std::pin::Pin;
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

struct Tail {
    store: Store,
    checkpoint: i64,
    buffer: VecDeque<RecordedEvent>,
    wake: Option<Wake>,
    failed: bool,
}

pub(super) fn subscribe(store: Store, after_position: i64) -> EventStream {
    let tail = Tail {
        store,
        checkpoint: after_position,
        buffer: VecDeque::new(),
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
        if self.failed {
            self.failed = false;
            tokio::time::sleep(idle).await;
        }
        loop {
            if let Some(event) = self.buffer.pop_front() {
                self.checkpoint = event.position;
                return Ok(event);
            }
            // The wake-up source exists before the read, so nothing that commits after
            // the read can go unnoticed.
            if self.wake.is_none() {
                self.wake = Some(Wake::new(&self.store).await.inspect_err(|_| {
                    self.failed = true;
                })?);
            }
            let wake = self.wake.as_mut().expect("wake set above");
            wake.arm();
            let batch = self
                .store
                .read_all(self.checkpoint, self.store.config().tail_batch)
                .await
                .inspect_err(|_| self.failed = true)?;
            if batch.is_empty() {
                if let Err(e) = wake.wait(idle).await {
                    self.wake = None;
                    self.failed = true;
                    return Err(e);
                }
            } else {
                self.buffer.extend(batch);
            }
        }
    }
}
