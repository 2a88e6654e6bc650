//! A real Redis Cluster of the test's own on loopback: three primaries and three replicas
//! (`redis-server --cluster-enabled yes`, joined by `redis-cli --cluster create`), without
//! persistence, with a short node timeout so that a killed primary's replica takes over
//! within seconds.
#![allow(clippy::expect_used)]

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use test_support::{eventually, free_port};

pub struct RedisCluster {
    nodes: Vec<(u16, Option<Child>)>,
    directory: PathBuf,
}

impl RedisCluster {
    pub async fn start() -> Self {
        let directory =
            std::env::temp_dir().join(format!("pw-cluster-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&directory).expect("cluster directory");
        let mut nodes = Vec::new();
        for _ in 0..6 {
            let port = free_cluster_port();
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
                // A replica may take over however long ago it last heard its primary: the
                // cluster is seconds old when a test kills one.
                .args(["--cluster-replica-validity-factor", "0"])
                .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&directory)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server must be installed");
            nodes.push((port, Some(child)));
        }
        let cluster = Self { nodes, directory };
        for (port, _) in &cluster.nodes {
            let port = *port;
            assert!(
                eventually(Duration::from_secs(10), || async move {
                    cli(port, &["PING"]).is_some_and(|out| out.contains("PONG"))
                })
                .await,
                "redis-server on {port} did not start"
            );
        }
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|(port, _)| format!("127.0.0.1:{port}"))
            .collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli");
        assert!(created.success(), "redis-cli --cluster create failed");
        cluster.wait_until_healthy().await;
        cluster
    }

    /// A `REDIS_URL` naming every node.
    pub fn url(&self) -> String {
        let mut nodes = self.live_ports().into_iter();
        let first = nodes.next().expect("a live node");
        let rest: Vec<String> = nodes.map(|port| format!("node=127.0.0.1:{port}")).collect();
        format!("redis-cluster://127.0.0.1:{first}?{}", rest.join("&"))
    }

    fn live_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .filter(|(_, child)| child.is_some())
            .map(|(port, _)| *port)
            .collect()
    }

    /// The port of the primary that holds `key`.
    pub fn primary_of(&self, key: &str) -> u16 {
        let port = self.live_ports()[0];
        let slot: u16 = cli(port, &["CLUSTER", "KEYSLOT", key])
            .and_then(|out| out.trim().parse().ok())
            .expect("CLUSTER KEYSLOT");
        let nodes = cli(port, &["CLUSTER", "NODES"]).expect("CLUSTER NODES");
        nodes
            .lines()
            .filter(|line| line.contains("master") && !line.contains("fail"))
            .find_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let owns = fields.iter().skip(8).any(|range| {
                    let (from, to) = range.split_once('-').unwrap_or((range, range));
                    matches!((from.parse::<u16>(), to.parse::<u16>()), (Ok(from), Ok(to)) if (from..=to).contains(&slot))
                });
                owns.then(|| fields[1].split(['@', ':']).nth(1)?.parse().ok())
                    .flatten()
            })
            .expect("a primary owns the slot")
    }

    /// Kills one node abruptly; what it had not replicated is gone.
    pub fn kill(&mut self, port: u16) {
        for (node_port, child) in &mut self.nodes {
            if *node_port == port
                && let Some(mut child) = child.take()
            {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    /// Until every live node says the cluster is ok (after a failover: a replica promoted).
    pub async fn wait_until_healthy(&self) {
        let ports = self.live_ports();
        assert!(
            eventually(Duration::from_secs(30), || {
                let ports = ports.clone();
                async move {
                    ports.iter().all(|port| {
                        cli(*port, &["CLUSTER", "INFO"])
                            .is_some_and(|info| info.contains("cluster_state:ok"))
                    })
                }
            })
            .await,
            "the cluster did not become healthy"
        );
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        let ports = self.live_ports();
        for port in ports {
            self.kill(port);
        }
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

/// A free port whose cluster bus port (10 000 higher) is free too, and so at most 55 535.
fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port <= 55_535 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

fn cli(port: u16, args: &[&str]) -> Option<String> {
    let output = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}
