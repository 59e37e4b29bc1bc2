//! Event store adapters.
