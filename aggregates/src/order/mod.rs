//! The order aggregate (being written).

/// JSON Schemas of every order event.
pub fn catalogue() -> Vec<crate::schema::EventSchema> {
    Vec::new()
}
