//! The stock aggregate (being written).

/// JSON Schemas of every stock event.
pub fn catalogue() -> Vec<crate::schema::EventSchema> {
    Vec::new()
}
