//! A minimal aggregate for store contract tests: a counter whose single event exists in
//! two schema versions (v1 `{"amount": n}`, v2 `{"by": n}`).

use cqrs_es::persist::{EventUpcaster, SemanticVersionEventUpcaster};
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Counter {
    pub total: i64,
    pub increments: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CounterEvent {
    Incremented(Incremented),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incremented {
    pub by: i64,
}

impl DomainEvent for CounterEvent {
    fn event_type(&self) -> String {
        "Incremented".into()
    }
    fn event_version(&self) -> String {
        "2".into()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum CounterCommand {
    /// Adds `n` (once, or `times` times as separate events).
    Increment { by: i64, times: usize },
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CounterError {
    #[error("increments must be positive")]
    NotPositive,
}

impl Aggregate for Counter {
    const TYPE: &'static str = "counter";
    type Command = CounterCommand;
    type Event = CounterEvent;
    type Error = CounterError;
    type Services = ();

    async fn handle(
        &mut self,
        command: CounterCommand,
        _: &(),
        sink: &cqrs_es::event_sink::EventSink<Self>,
    ) -> Result<(), CounterError> {
        let CounterCommand::Increment { by, times } = command;
        if by <= 0 {
            return Err(CounterError::NotPositive);
        }
        for _ in 0..times {
            sink.write(CounterEvent::Incremented(Incremented { by }), self)
                .await;
        }
        Ok(())
    }

    fn apply(&mut self, event: CounterEvent) {
        let CounterEvent::Incremented(e) = event;
        self.total += e.by;
        self.increments += 1;
    }
}

/// Turns a stored v1 `Incremented {"amount": n}` into v2 `{"by": n}`.
pub fn upcasters() -> Vec<Box<dyn EventUpcaster>> {
    vec![Box::new(SemanticVersionEventUpcaster::new(
        "Incremented",
        "2",
        Box::new(|payload: Value| {
            let amount = payload["Incremented"]["amount"].clone();
            serde_json::json!({ "Incremented": { "by": amount } })
        }),
    ))]
}
