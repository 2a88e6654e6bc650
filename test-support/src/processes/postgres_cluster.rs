//! A PostgreSQL cluster of the test's own, made with initdb and run with pg_ctl.

use std::{
    path::{Path, PathBuf},
    process::Command,
    process::Stdio,
};

use super::free_port;
use crate::tls;

/// A PostgreSQL cluster of the test's own, made with the installed server's initdb and
/// run with pg_ctl on a free port, so stopping it touches no other test.
pub struct PostgresCluster {
    directory: PathBuf,
    bin: PathBuf,
    pub port: u16,
}

impl PostgresCluster {
    pub async fn start() -> Self {
        let cluster = Self::init();
        cluster.start_server();
        cluster
    }

    /// A cluster that accepts TCP connections over TLS only (`ssl = on`, `hostssl` lines
    /// alone in pg_hba.conf), with a certificate `ca` signed for localhost and 127.0.0.1.
    pub async fn start_tls(ca: &tls::TestCa) -> Self {
        use std::os::unix::fs::PermissionsExt;
        let cluster = Self::init();
        let certificate = ca.server("postgres", &["localhost", "127.0.0.1"]);
        let data = PathBuf::from(cluster.data_dir());
        std::fs::copy(&certificate.cert_file, data.join("server.crt")).expect("server.crt");
        std::fs::copy(&certificate.key_file, data.join("server.key")).expect("server.key");
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .expect("the key readable by its owner only, as PostgreSQL demands");
        let mut conf = std::fs::read_to_string(data.join("postgresql.conf")).expect("conf");
        conf.push_str("\nssl = on\n");
        std::fs::write(data.join("postgresql.conf"), conf).expect("write postgresql.conf");
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
        )
        .expect("write pg_hba.conf");
        give_to_postgres_user(&cluster.directory);
        cluster.start_server();
        cluster
    }

    /// initdb in a fresh directory, on a free port; not started.
    fn init() -> Self {
        let bin = postgres_bin_dir();
        let directory =
            std::env::temp_dir().join(format!("pw-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&directory).expect("cluster directory");
        let cluster = Self {
            directory,
            bin,
            port: free_port(),
        };
        // PostgreSQL refuses to run as root: run it as the postgres user when we are root.
        give_to_postgres_user(&cluster.directory);
        cluster.postgres_command(
            "initdb",
            &[
                "-D",
                &cluster.data_dir(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        cluster
    }

    fn data_dir(&self) -> String {
        self.directory.join("data").display().to_string()
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c fsync=off",
            self.port,
            self.directory.display()
        );
        let log = self.directory.join("server.log").display().to_string();
        self.postgres_command(
            "pg_ctl",
            &[
                "-D",
                &self.data_dir(),
                "-o",
                &options,
                "-l",
                &log,
                "-w",
                "start",
            ],
        );
    }

    /// Immediate shutdown: connections drop at once, as when the server dies.
    pub fn stop_server(&self) {
        self.stop_server_in("immediate");
    }

    /// Fast shutdown: every backend is told `terminating connection due to administrator
    /// command` (57P01), as in a restart, a failover or a managed database's maintenance.
    pub fn stop_server_fast(&self) {
        self.stop_server_in("fast");
    }

    fn stop_server_in(&self, mode: &str) {
        self.postgres_command(
            "pg_ctl",
            &["-D", &self.data_dir(), "-m", mode, "-w", "stop"],
        );
    }

    pub async fn create_database(&self, name: &str) {
        let admin = sea_orm::Database::connect(self.url("postgres"))
            .await
            .expect("connect to the cluster");
        sea_orm::ConnectionTrait::execute_unprepared(
            &admin,
            &format!("CREATE DATABASE \"{name}\""),
        )
        .await
        .expect("create database");
        admin.close().await.ok();
    }

    fn postgres_command(&self, program: &str, args: &[&str]) {
        let program = self.bin.join(program);
        let status = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&program)
                .args(args)
                .stdout(Stdio::null())
                .status()
        } else {
            Command::new(&program)
                .args(args)
                .stdout(Stdio::null())
                .status()
        }
        .expect("run a PostgreSQL server command");
        assert!(status.success(), "{} {args:?} failed", program.display());
    }
}

impl Drop for PostgresCluster {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .args(["-D", &self.data_dir(), "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
        .unwrap_or(false)
}

fn give_to_postgres_user(directory: &Path) {
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(directory)
            .status()
            .expect("chown");
        assert!(status.success(), "chown the cluster directory to postgres");
    }
}

/// The newest installed PostgreSQL server's bin directory (Debian's layout), or
/// `POSTGRES_BIN_DIR`.
fn postgres_bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("POSTGRES_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL server binaries under /usr/lib/postgresql (or set POSTGRES_BIN_DIR)")
        .filter_map(|entry| entry.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("an installed PostgreSQL server with initdb")
}
