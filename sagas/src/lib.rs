//! Process managers (see docs/architecture.md). Filled in by the sagas issue.
