//! The decoding contract seen from outside the crate, through the real aggregates: every
//! reader of the log decodes with `EventSourced::decode`, and every way a stored event can
//! fail to become a typed event is a distinct `DecodeError`.
//!
//! The upcaster chain itself (a stored v1 fixture decoded into a v2 event) is proven in
//! `src/stream.rs`, where a test-only event enum can implement `Upcasters`.

use aggregates::cart::{Cart, CartEvent};
use aggregates::schema::catalogue;
use aggregates::stock::Stock;
use aggregates::{DecodeError, EventSourced};
use serde_json::json;

fn cart_opened_example() -> serde_json::Value {
    catalogue()
        .into_iter()
        .find(|e| e.event_type == "CartOpened")
        .expect("CartOpened is catalogued")
        .example()
        .clone()
}

#[test]
fn a_catalogued_example_decodes_to_its_typed_event() {
    let event = Cart::decode("CartOpened", 1, cart_opened_example()).unwrap();
    assert!(matches!(event, CartEvent::CartOpened(_)));
    let (event_type, version, payload) = Cart::encode(&event);
    assert_eq!((event_type, version), ("CartOpened", 1));
    assert_eq!(payload, cart_opened_example());
}

#[test]
fn another_aggregates_event_type_is_unknown_to_this_one() {
    let err = Stock::decode("CartOpened", 1, cart_opened_example()).unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnknownType {
            stream_type: "stock",
            event_type: "CartOpened".into(),
        }
    );
}

#[test]
fn a_version_this_build_does_not_know_is_refused() {
    let err = Cart::decode("CartOpened", 2, cart_opened_example()).unwrap_err();
    assert_eq!(
        err,
        DecodeError::FutureVersion {
            event_type: "CartOpened".into(),
            version: 2,
            current: 1,
        }
    );
}

#[test]
fn a_version_without_an_upcaster_is_refused() {
    // No aggregate has upcasters yet: anything older than v1 has no path forward.
    let err = Cart::decode("CartOpened", 0, cart_opened_example()).unwrap_err();
    assert_eq!(
        err,
        DecodeError::MissingUpcaster {
            event_type: "CartOpened".into(),
            version: 0,
        }
    );
}

#[test]
fn a_malformed_payload_is_refused() {
    let mut wrong_type = cart_opened_example();
    wrong_type["currency"] = json!(978);
    for payload in [json!({}), wrong_type, json!(null), json!([1, 2])] {
        let err = Cart::decode("CartOpened", 1, payload.clone()).unwrap_err();
        assert!(
            matches!(&err, DecodeError::Payload { event_type, version: 1, .. } if event_type == "CartOpened"),
            "{payload}: {err:?}"
        );
    }
}

#[test]
fn decode_errors_say_what_went_wrong() {
    let err = Cart::decode("CartOpened", 7, json!({})).unwrap_err();
    assert_eq!(
        err.to_string(),
        "CartOpened v7 is newer than this build knows (v1)"
    );
}
