//! The loyalty aggregate (being written).

/// JSON Schemas of every loyalty event.
pub fn catalogue() -> Vec<crate::schema::EventSchema> {
    Vec::new()
}
