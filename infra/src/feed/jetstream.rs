//! The feed over a durable JetStream pull consumer.

use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::{self, stream::Stream, AckKind};
use async_nats::HeaderMap;
use futures_util::StreamExt;

use super::{Delivery, Envelope, Feed, FeedError, Receipt};
use crate::relay::message as ce;

/// Settings of one subscriber's durable consumer.
#[derive(Debug, Clone)]
pub struct JetStreamFeedConfig {
    /// The stream the relay publishes to ([`crate::relay::RelayConfig::stream`]).
    pub stream: String,
    /// The durable consumer name: one per subscriber; its acks are its progress.
    pub durable: String,
    /// Only subjects matching this (e.g. `commerce.order.>`); `None` for all.
    pub filter_subject: Option<String>,
    /// How long a delivery may stay unacknowledged before it is redelivered (when
    /// `backoff` is empty).
    pub ack_wait: Duration,
    /// Redelivery delays: the n-th redelivery waits `backoff[n-1]` (the last one
    /// repeats). Must be shorter than `max_deliver`.
    pub backoff: Vec<Duration>,
    /// Deliveries per message before JetStream gives up on it (-1 = no limit).
    pub max_deliver: i64,
    /// Deliveries awaiting their ack at once.
    pub max_ack_pending: i64,
}

impl JetStreamFeedConfig {
    /// Defaults for `durable` on `stream`: 30 s ack wait, backoff 1 s / 5 s / 30 s / 2 min,
    /// 10 deliveries, 1000 pending acks.
    pub fn new(stream: impl Into<String>, durable: impl Into<String>) -> Self {
        Self {
            stream: stream.into(),
            durable: durable.into(),
            filter_subject: None,
            ack_wait: Duration::from_secs(30),
            backoff: vec![
                Duration::from_secs(1),
                Duration::from_secs(5),
                Duration::from_secs(30),
                Duration::from_secs(120),
            ],
            max_deliver: 10,
            max_ack_pending: 1000,
        }
    }
}

/// Most messages one fetch asks for.
const MAX_BATCH: usize = 64;

/// How long a request for one message waits on the server (when none was there) before
/// a new one is made.
const FETCH_EXPIRES: Duration = Duration::from_secs(5);

/// A [`Feed`] over a durable pull consumer with explicit acks.
///
/// When the durable consumer does not exist yet, it is created to deliver from the first
/// message whose `ce-position` is above the requested position, found by binary search
/// over the stream, whose positions increase with its sequence except in short
/// out-of-order stretches a relay restart can leave (an event re-sent after later ones
/// were stored, see [`crate::relay`]). So the consumer starts [`REORDER_MARGIN`] messages
/// before what the search found, and the floor below skips what lies at or below the
/// requested position: no event above it is missed. When it exists, it
/// resumes from its own ack state; messages at or below the requested position are then
/// acknowledged and skipped, so the consumer's stored position is always respected.
///
/// **Prefetch never outlives the ack wait.** Every message JetStream hands over starts
/// its ack-wait clock, even while it waits in this process's buffer; a buffered message
/// whose ack wait runs out is redelivered to another process while this one still means
/// to handle it. So the feed fetches small batches, sized to what it can work off within
/// half the ack wait at the time it observes per delivery (from hand-out to ack or
/// release; one message until it has observed any), and each [`Delivery`] carries a
/// [keep-alive](Delivery::keep_alive) interval at which the consumer reports it in
/// progress, which restarts its ack wait while a slow handler runs.
pub struct JetStreamFeed {
    consumer: PullConsumer,
    batch: Option<pull::Batch>,
    floor: i64,
    /// The shortest wait before JetStream redelivers an unacknowledged message.
    ack_wait: Duration,
    /// Time per delivery: rises at once with a slow one, falls slowly.
    per_delivery: Option<Duration>,
    /// When the delivery being worked on was handed out.
    handed_out: Option<Instant>,
    /// Whether the current (or last) request has brought nothing yet.
    empty: bool,
}

impl std::fmt::Debug for JetStreamFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JetStreamFeed")
            .field("floor", &self.floor)
            .field("ack_wait", &self.ack_wait)
            .field("per_delivery", &self.per_delivery)
            .finish_non_exhaustive()
    }
}

impl JetStreamFeed {
    /// Opens (creating if needed) the durable consumer and starts pulling events after
    /// `after_position`.
    pub async fn open(
        nats: async_nats::Client,
        config: JetStreamFeedConfig,
        after_position: i64,
    ) -> Result<Self, FeedError> {
        let context = jetstream::new(nats);
        let stream = context
            .get_stream(&config.stream)
            .await
            .map_err(FeedError::nats)?;
        let consumer: PullConsumer = match stream.get_consumer(&config.durable).await {
            Ok(consumer) => consumer,
            Err(_) => {
                let start = start_sequence(&stream, after_position).await?;
                stream
                    .get_or_create_consumer(
                        &config.durable,
                        pull::Config {
                            durable_name: Some(config.durable.clone()),
                            deliver_policy: DeliverPolicy::ByStartSequence {
                                start_sequence: start,
                            },
                            ack_policy: AckPolicy::Explicit,
                            ack_wait: config.ack_wait,
                            backoff: config.backoff.clone(),
                            max_deliver: config.max_deliver,
                            max_ack_pending: config.max_ack_pending,
                            filter_subject: config.filter_subject.clone().unwrap_or_default(),
                            ..Default::default()
                        },
                    )
                    .await
                    .map_err(FeedError::nats)?
            }
        };
        // With a backoff list, the n-th redelivery waits backoff[n-1] instead.
        let ack_wait = config
            .backoff
            .iter()
            .copied()
            .fold(config.ack_wait, Duration::min);
        Ok(Self {
            consumer,
            batch: None,
            floor: after_position,
            ack_wait,
            per_delivery: None,
            handed_out: None,
            empty: false,
        })
    }

    /// How many messages the next fetch may take: as many as can be worked off within
    /// half the ack wait at the observed time per delivery.
    fn batch_size(&self) -> usize {
        match self.per_delivery {
            None => 1,
            Some(per) if per.is_zero() => MAX_BATCH,
            Some(per) => {
                let fits = (self.ack_wait / 2).as_nanos() / per.as_nanos();
                usize::try_from(fits)
                    .unwrap_or(MAX_BATCH)
                    .clamp(1, MAX_BATCH)
            }
        }
    }

    /// Records how long the delivery just finished took.
    fn observe(&mut self) {
        let Some(since) = self.handed_out.take() else {
            return;
        };
        let took = since.elapsed();
        self.per_delivery = Some(match self.per_delivery {
            // Pessimistic: one slow delivery shrinks the next fetch at once; fast ones
            // grow it back gradually.
            Some(per) if took < per => (per * 7 + took) / 8,
            _ => took,
        });
    }

    /// The next message, fetching a new batch when the current one is used up.
    ///
    /// A fetch takes only what is there at once (no request is left waiting on the
    /// server, which would go on filling this feed's buffer while nobody reads it, up to
    /// the batch size). Only when nothing is there does the feed wait on the server, for
    /// one message at a time.
    async fn next_message(&mut self) -> Result<jetstream::Message, FeedError> {
        loop {
            if self.batch.is_none() {
                let batch = if self.empty {
                    self.consumer
                        .batch()
                        .max_messages(1)
                        .expires(FETCH_EXPIRES)
                        .messages()
                        .await
                } else {
                    self.consumer
                        .fetch()
                        .max_messages(self.batch_size())
                        .messages()
                        .await
                };
                self.batch = Some(batch.map_err(FeedError::nats)?);
                self.empty = true;
            }
            let Some(batch) = self.batch.as_mut() else {
                continue;
            };
            match batch.next().await {
                Some(Ok(message)) => {
                    self.empty = false;
                    return Ok(message);
                }
                Some(Err(err)) => {
                    self.batch = None;
                    return Err(FeedError::Nats(err));
                }
                // Used up or expired: ask again (and wait on the server if this one
                // brought nothing).
                None => self.batch = None,
            }
        }
    }
}

/// Messages a new consumer starts before the binary search's answer. An out-of-order
/// stretch is at most the relay's publishes in flight when a session failed
/// (`RelayConfig::max_in_flight`, 256 by default), so a late event never lies further
/// than that behind the first event above it; the margin covers a few such failures in
/// a row. Keep `max_in_flight` well below it.
pub const REORDER_MARGIN: u64 = 1024;

/// Where a new consumer for events above `after` starts: [`REORDER_MARGIN`] messages
/// before the first message the binary search finds with a position above `after` (or
/// one past the last message when there is none yet: the consumer then waits for it).
async fn start_sequence(stream: &Stream, after: i64) -> Result<u64, FeedError> {
    let state = stream.get_info().await.map_err(FeedError::nats)?.state;
    if state.messages == 0 {
        return Ok(state.last_sequence + 1);
    }
    let found = search_start(stream, after, &state).await?;
    Ok(found
        .saturating_sub(REORDER_MARGIN)
        .max(state.first_sequence))
}

/// The binary search of [`start_sequence`], exact when positions increase with sequence.
async fn search_start(
    stream: &Stream,
    after: i64,
    state: &async_nats::jetstream::stream::State,
) -> Result<u64, FeedError> {
    let (mut low, mut high) = (state.first_sequence, state.last_sequence + 1);
    while low < high {
        let mid = low + (high - low) / 2;
        let position = match stream.get_raw_message(mid).await {
            Ok(message) => match position_of(&message.headers, mid) {
                Ok(position) => position,
                // Not one of ours: start earlier; the floor skips the surplus.
                Err(_) => return Ok(low),
            },
            // A hole (deleted message): likewise.
            Err(_) => return Ok(low),
        };
        if position <= after {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    Ok(low)
}

fn header<'a>(headers: &'a HeaderMap, name: &str, sequence: u64) -> Result<&'a str, FeedError> {
    headers
        .get(name)
        .map(|v| v.as_str())
        .ok_or_else(|| FeedError::Malformed {
            sequence,
            reason: format!("missing header {name}"),
        })
}

fn malformed(sequence: u64, what: &str, err: impl std::fmt::Display) -> FeedError {
    FeedError::Malformed {
        sequence,
        reason: format!("{what}: {err}"),
    }
}

fn position_of(headers: &HeaderMap, sequence: u64) -> Result<i64, FeedError> {
    header(headers, ce::POSITION, sequence)?
        .parse()
        .map_err(|e| malformed(sequence, ce::POSITION, e))
}

/// Rebuilds the envelope from the CloudEvents headers through the relay's own decoder,
/// which reverses its header escaping.
fn decode(headers: &HeaderMap, payload: &[u8], sequence: u64) -> Result<Envelope, FeedError> {
    crate::relay::message::decode(headers, payload)
        .map_err(|e| malformed(sequence, e.header, e.reason))
}

impl Feed for JetStreamFeed {
    async fn next(&mut self) -> Result<Delivery, FeedError> {
        loop {
            let message = self.next_message().await?;
            let (sequence, attempt) = {
                let info = message.info().map_err(FeedError::Nats)?;
                (info.stream_sequence, info.delivered.max(1) as u64)
            };
            let empty = HeaderMap::new();
            let headers = message.headers.as_ref().unwrap_or(&empty);
            let envelope = match decode(headers, &message.payload, sequence) {
                Ok(envelope) => envelope,
                Err(err) => {
                    // Not an event of this system (the relay only publishes well-formed
                    // ones): redelivering it cannot help, so JetStream is told to drop it.
                    message
                        .ack_with(AckKind::Term)
                        .await
                        .map_err(FeedError::Nats)?;
                    return Err(err);
                }
            };
            if envelope.position <= self.floor {
                // Already applied by this subscriber (its stored position says so).
                message.ack().await.map_err(FeedError::Nats)?;
                continue;
            }
            self.handed_out = Some(Instant::now());
            return Ok(Delivery {
                envelope,
                attempt,
                receipt: Receipt::JetStream(Box::new(message)),
                keep_alive: Some(self.ack_wait / 3),
            });
        }
    }

    async fn ack(&mut self, delivery: &Delivery) -> Result<(), FeedError> {
        self.observe();
        match &delivery.receipt {
            Receipt::JetStream(message) => message.ack().await.map_err(FeedError::Nats),
            Receipt::Local => Ok(()),
        }
    }

    async fn release(&mut self, delivery: &Delivery, delay: Duration) -> Result<bool, FeedError> {
        self.observe();
        match &delivery.receipt {
            Receipt::JetStream(message) => {
                message
                    .ack_with(AckKind::Nak(Some(delay)))
                    .await
                    .map_err(FeedError::Nats)?;
                Ok(true)
            }
            Receipt::Local => Ok(false),
        }
    }
}
