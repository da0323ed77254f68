//! Helpers shared by the black-box test suites of several crates. Test-only: no production crate
//! depends on this one.

pub mod openapi;
pub mod smithy;
