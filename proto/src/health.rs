//! The names the processor reports on `grpc.health.v1.Health`, which the gateway's
//! readiness probe asks for. `""` (the server as a whole) follows [`SERVICE`].

/// SERVING only while every dependency answers.
pub const SERVICE: &str = "payments.v1.TransactionService";
/// Each dependency on its own: what it is called in a readiness answer, and its name.
pub const DEPENDENCIES: [(&str, &str); 2] = [("postgres", POSTGRES), ("redis", REDIS)];
pub const POSTGRES: &str = "payments.v1.dependency.postgres";
pub const REDIS: &str = "payments.v1.dependency.redis";
