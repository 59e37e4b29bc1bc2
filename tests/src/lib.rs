//! Shared support for the black-box tests.
