//! The cart aggregate (being written).

/// JSON Schemas of every cart event.
pub fn catalogue() -> Vec<crate::schema::EventSchema> {
    Vec::new()
}
