//! Given/when/then tests of the order aggregate, one file per area, plus property tests.

mod fixtures;
mod fulfilment;
mod lifecycle;
mod money;
mod properties;
mod returns;
