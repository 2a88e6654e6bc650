//! The shared fixtures, and this crate's processor started from a test's `Setup`.

#[path = "../shared/start_processor.rs"]
mod start_processor;

pub use start_processor::StartProcessor;
pub use test_support::*;
