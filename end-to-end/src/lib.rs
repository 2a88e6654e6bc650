//! Nothing but tests: `tests/it` runs the real gateway over HTTP, with the real processor
//! behind it, both in-process on port 0. A crate of its own so that neither binary's tests
//! depend on the other binary (the processor's fault tests put a gateway in front of the
//! processor binary; this crate puts a processor behind the gateway).
