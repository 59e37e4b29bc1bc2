//! The promotion aggregate (being written).

/// JSON Schemas of every promotion event.
pub fn catalogue() -> Vec<crate::schema::EventSchema> {
    Vec::new()
}
