//! Servers of a test's own, on a free port, for tests that stop, break or reconfigure
//! them: nothing a test does to them touches another test.

mod postgres_cluster;
mod redis_server;

pub use postgres_cluster::PostgresCluster;
pub use redis_server::RedisServer;

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}
