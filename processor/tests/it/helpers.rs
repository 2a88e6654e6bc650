pub use processor::testing::*;
