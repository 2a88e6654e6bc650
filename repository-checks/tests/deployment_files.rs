//! The deployment files held against the code, since no Docker engine runs where the tests
//! do: `Dockerfile.gateway`, `Dockerfile.processor`, `docker-compose.yml`, `Procfile` and
//! everything under `deploy/`.
//!
//! Nothing here is copied from the code by hand: the variables each binary reads come from
//! `config::VARIABLES` (the migration CLI's from its `main.rs`), the ports from the
//! binaries' own defaults (`Config::from_lookup(|_| None)`), the binaries from the
//! workspace members' manifests and the HTTP routes from the gateway's route modules.

// A test binary: the helpers below panic with a message naming the file at fault, as the
// tests themselves do (clippy's allow-expect-in-tests covers only `#[test]` functions).
#![allow(clippy::expect_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

use serde_norway::Value;

const PROCESSOR: &str = "processor";
const GATEWAY: &str = "ingest-gateway";
const MIGRATION: &str = "migration";
/// The benchmarks' baselines, each built in the workspace and never deployed: the naive
/// path of issue 6 (`bench/naive-path`), the storage-free axum -> gRPC hop (`bench/hop`)
/// and the lean per-request-commit path (`bench/lean-path`) of issue 19.
const BENCHMARK_BASELINES: [&str; 3] = ["naive-path", "hop", "lean-path"];
/// The benchmarks' load generator (`bench/loadgen`): built in the workspace, never deployed.
const BENCHMARK_LOAD_GENERATOR: &str = "loadgen";

/// Variables a platform sets for a process, which a deployment file may expand (`$PORT`)
/// but never needs a binary to read.
const PLATFORM_VARIABLES: &[&str] = &["PORT"];

/// Programs every Debian slim image carries (the `bash` and `coreutils` packages).
const DEBIAN_BASE_PROGRAMS: &[&str] = &["bash", "sh", "cat", "test", "true"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds repository-checks/")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

// ---------------------------------------------------------------------------------------
// What the code says
// ---------------------------------------------------------------------------------------

/// Binaries of the workspace's packages: a package with `src/main.rs` has one named like
/// itself; `[[bin]]` sections add theirs.
fn workspace_binaries() -> BTreeSet<String> {
    let manifest = read("Cargo.toml");
    let members = manifest
        .split_once("members")
        .and_then(|(_, rest)| rest.split_once('['))
        .and_then(|(_, rest)| rest.split_once(']'))
        .map(|(list, _)| list)
        .expect("[workspace] members");
    let mut binaries = BTreeSet::new();
    for member in members.split(',').map(|m| m.trim().trim_matches('"')) {
        if member.is_empty() {
            continue;
        }
        let crate_manifest = read(&format!("{member}/Cargo.toml"));
        let mut section = String::new();
        for line in crate_manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.to_owned();
                continue;
            }
            let Some(name) = line
                .strip_prefix("name")
                .and_then(|rest| rest.trim_start().strip_prefix('='))
                .map(|value| value.trim().trim_matches('"').to_owned())
            else {
                continue;
            };
            let main = root().join(member).join("src/main.rs");
            if (section == "[package]" && main.exists()) || section == "[[bin]]" {
                binaries.insert(name);
            }
        }
    }
    binaries
}

/// Every environment variable `binary` reads.
fn variables_of(binary: &str) -> BTreeSet<String> {
    let listed: &[&str] = match binary {
        PROCESSOR => processor::config::VARIABLES,
        GATEWAY => ingest_gateway::config::VARIABLES,
        MIGRATION => {
            // No config module: its main.rs reads the environment directly.
            let source = read("migration/src/main.rs");
            let read: BTreeSet<String> = source
                .split("env::var(\"")
                .skip(1)
                .filter_map(|rest| rest.split_once('"').map(|(name, _)| name.to_owned()))
                .collect();
            assert!(!read.is_empty(), "migration/src/main.rs reads no variable?");
            return read;
        }
        other => panic!("unknown binary {other}"),
    };
    listed.iter().map(|v| (*v).to_owned()).collect()
}

fn variables_of_any_binary() -> BTreeSet<String> {
    [PROCESSOR, GATEWAY, MIGRATION]
        .into_iter()
        .flat_map(variables_of)
        .collect()
}

/// The port a binary listens on by default, or `None` for one that does not listen.
fn default_port(binary: &str) -> Option<u16> {
    match binary {
        PROCESSOR => Some(
            processor::Config::from_lookup(|_| None)
                .expect("processor defaults")
                .grpc_addr
                .port(),
        ),
        GATEWAY => Some(gateway_defaults().http_addr.port()),
        _ => None,
    }
}

/// The gateway's defaults. It starts only with a signature secret and API_TOKENS, or
/// with both doors stated open; which, changes no port.
fn gateway_defaults() -> ingest_gateway::Config {
    ingest_gateway::Config::from_lookup(|name| {
        GATEWAY_OPEN_DOORS
            .contains(&name)
            .then(|| "true".to_owned())
    })
    .expect("gateway defaults")
}

/// The gateway's flags that let it start without credentials: for local set-ups only.
const GATEWAY_OPEN_DOORS: &[&str] = &["ALLOW_UNSIGNED_WEBHOOKS", "ALLOW_UNAUTHENTICATED_READS"];

/// Every port a binary listens on by default: its main one, and each binary's metrics.
fn default_ports(binary: &str) -> BTreeSet<u16> {
    let mut ports: BTreeSet<u16> = default_port(binary).into_iter().collect();
    if binary == PROCESSOR {
        let defaults = processor::Config::from_lookup(|_| None).expect("processor defaults");
        ports.insert(defaults.metrics_addr.port());
    }
    if binary == GATEWAY {
        ports.insert(gateway_defaults().metrics_addr.port());
    }
    ports
}

/// The gateway's HTTP routes, read from its route modules: plain axum `.route("…"`
/// calls and utoipa `path = "…"` annotations.
fn gateway_routes() -> BTreeSet<String> {
    let mut routes = BTreeSet::new();
    let directory = root().join("ingest-gateway/src/routes");
    for entry in fs::read_dir(&directory).expect("ingest-gateway/src/routes") {
        let source = fs::read_to_string(entry.expect("entry").path()).expect("route module");
        for marker in [".route(", "path = "] {
            for rest in source.split(marker).skip(1) {
                let rest = rest.trim_start();
                if let Some(quoted) = rest.strip_prefix('"')
                    && let Some((path, _)) = quoted.split_once('"')
                    && path.starts_with('/')
                {
                    routes.insert(path.to_owned());
                }
            }
        }
    }
    assert!(
        routes.contains("/"),
        "GET / (liveness) not found: {routes:?}"
    );
    routes
}

// ---------------------------------------------------------------------------------------
// Dockerfiles
// ---------------------------------------------------------------------------------------

#[derive(Debug)]
struct Stage {
    name: String,
    base: String,
    /// (KEYWORD, arguments), continuation lines joined.
    instructions: Vec<(String, String)>,
}

impl Stage {
    fn all(&self, keyword: &str) -> impl Iterator<Item = &str> {
        self.instructions
            .iter()
            .filter(move |(k, _)| k == keyword)
            .map(|(_, arguments)| arguments.as_str())
    }
}

struct Dockerfile {
    file: &'static str,
    stages: Vec<Stage>,
}

impl Dockerfile {
    fn parse(file: &'static str) -> Self {
        let text = read(file);
        let mut logical = Vec::new();
        let mut current = String::new();
        for line in text.lines() {
            let trimmed = line.trim();
            // Comments, also those inside a continued instruction, are no part of it.
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            match trimmed.strip_suffix('\\') {
                Some(head) => {
                    current.push_str(head);
                    current.push(' ');
                }
                None => {
                    current.push_str(trimmed);
                    logical.push(std::mem::take(&mut current));
                }
            }
        }
        let mut stages: Vec<Stage> = Vec::new();
        for instruction in logical {
            let (keyword, arguments) = instruction
                .split_once(char::is_whitespace)
                .map(|(k, a)| (k.to_uppercase(), a.trim().to_owned()))
                .unwrap_or_else(|| (instruction.to_uppercase(), String::new()));
            if keyword == "FROM" {
                let words: Vec<&str> = arguments.split_whitespace().collect();
                let name = match words.as_slice() {
                    [_, as_, name] if as_.eq_ignore_ascii_case("as") => (*name).to_owned(),
                    _ => format!("stage{}", stages.len()),
                };
                stages.push(Stage {
                    name,
                    base: words.first().map(|w| (*w).to_owned()).unwrap_or_default(),
                    instructions: Vec::new(),
                });
            } else if let Some(stage) = stages.last_mut() {
                stage.instructions.push((keyword, arguments));
            }
        }
        assert!(stages.len() >= 2, "{file}: not a multi-stage build");
        Self { file, stages }
    }

    fn runtime(&self) -> &Stage {
        self.stages.last().expect("at least one stage")
    }

    fn stage(&self, name: &str) -> &Stage {
        self.stages
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{}: no stage {name}", self.file))
    }

    /// `ARG NAME=value` defaults, to resolve `${NAME}` in base images.
    fn resolve(&self, text: &str) -> String {
        let text_file = read(self.file);
        let mut resolved = text.to_owned();
        for line in text_file.lines() {
            if let Some((name, value)) = line.strip_prefix("ARG ").and_then(|a| a.split_once('=')) {
                resolved = resolved.replace(&format!("${{{}}}", name.trim()), value.trim());
            }
        }
        resolved
    }

    /// Binaries copied into the runtime stage from another stage, by file name.
    fn copied_binaries(&self) -> BTreeSet<String> {
        self.runtime()
            .all("COPY")
            .filter(|arguments| arguments.contains("--from="))
            .filter_map(|arguments| {
                let words: Vec<&str> = arguments.split_whitespace().collect();
                let source = words.get(words.len().checked_sub(2)?)?;
                source.rsplit('/').next().map(str::to_owned)
            })
            .collect()
    }

    /// `--bin X` of every cargo command.
    fn built_binaries(&self) -> BTreeSet<String> {
        let mut binaries = BTreeSet::new();
        for stage in &self.stages {
            for run in stage.all("RUN").filter(|r| r.contains("cargo ")) {
                let words: Vec<&str> = run.split_whitespace().collect();
                for pair in words.windows(2) {
                    if pair[0] == "--bin" {
                        binaries.insert(pair[1].to_owned());
                    }
                }
            }
        }
        binaries
    }

    /// The exec-form ENTRYPOINT's program, by file name.
    fn entrypoint_binary(&self) -> String {
        let entrypoint = self.runtime().all("ENTRYPOINT").last().map(|e| {
            serde_norway::from_str::<Vec<String>>(e)
                .unwrap_or_else(|_| panic!("{}: ENTRYPOINT must be exec form", self.file))
        });
        let program = entrypoint
            .and_then(|words| words.first().cloned())
            .unwrap_or_else(|| panic!("{}: no ENTRYPOINT", self.file));
        program.rsplit('/').next().unwrap_or_default().to_owned()
    }

    /// The HEALTHCHECK's command, exec form, if there is one.
    fn healthcheck(&self) -> Option<Vec<String>> {
        let arguments = self.runtime().all("HEALTHCHECK").last()?;
        let (_, command) = arguments
            .split_once("CMD ")
            .unwrap_or_else(|| panic!("{}: HEALTHCHECK without CMD", self.file));
        Some(
            serde_norway::from_str::<Vec<String>>(command.trim())
                .unwrap_or_else(|_| panic!("{}: HEALTHCHECK CMD must be exec form", self.file)),
        )
    }

    /// Programs the runtime image has: the base image's, what `apt-get install` adds
    /// (package names taken as program names, which holds for the packages we use), and
    /// what is copied in.
    fn runtime_programs(&self) -> BTreeSet<String> {
        let runtime = self.runtime();
        let mut programs: BTreeSet<String> = BTreeSet::new();
        if runtime.base.starts_with("debian:") {
            programs.extend(DEBIAN_BASE_PROGRAMS.iter().map(|p| (*p).to_owned()));
        }
        for run in runtime.all("RUN") {
            for command in run.split("&&") {
                if let Some((_, packages)) = command.split_once("apt-get install") {
                    programs.extend(
                        packages
                            .split_whitespace()
                            .filter(|w| !w.starts_with('-'))
                            .map(str::to_owned),
                    );
                }
            }
        }
        programs.extend(self.copied_binaries());
        programs
    }

    fn exposed_ports(&self) -> BTreeSet<u16> {
        self.runtime()
            .all("EXPOSE")
            .flat_map(str::split_whitespace)
            .map(|p| {
                p.trim_end_matches("/tcp")
                    .parse()
                    .unwrap_or_else(|_| panic!("{}: EXPOSE {p}", self.file))
            })
            .collect()
    }
}

/// Each Dockerfile, the binary it runs and the binaries it must ship.
fn dockerfiles() -> Vec<(Dockerfile, &'static str, &'static [&'static str])> {
    vec![
        (Dockerfile::parse("Dockerfile.gateway"), GATEWAY, &[GATEWAY]),
        (
            Dockerfile::parse("Dockerfile.processor"),
            PROCESSOR,
            &[PROCESSOR, MIGRATION],
        ),
    ]
}

fn dockerfile_for(file: &str) -> (Dockerfile, &'static str) {
    dockerfiles()
        .into_iter()
        .find(|(d, _, _)| d.file == file)
        .map(|(d, binary, _)| (d, binary))
        .unwrap_or_else(|| panic!("no such Dockerfile: {file}"))
}

#[test]
fn dockerfiles_build_and_ship_workspace_binaries() {
    let workspace = workspace_binaries();
    assert_eq!(
        workspace,
        [GATEWAY, MIGRATION, PROCESSOR, BENCHMARK_LOAD_GENERATOR]
            .into_iter()
            .chain(BENCHMARK_BASELINES)
            .map(str::to_owned)
            .collect(),
        "the workspace's binaries changed: review the Dockerfiles and this test"
    );
    for (dockerfile, binary, ships) in dockerfiles() {
        let file = dockerfile.file;
        let ships: BTreeSet<String> = ships.iter().map(|b| (*b).to_owned()).collect();
        let built = dockerfile.built_binaries();
        assert!(built.is_subset(&workspace), "{file}: builds {built:?}");
        for benchmark_only in BENCHMARK_BASELINES
            .into_iter()
            .chain([BENCHMARK_LOAD_GENERATOR])
        {
            assert!(
                !built.contains(benchmark_only),
                "{file}: the benchmarks' {benchmark_only} is not part of any image"
            );
        }
        assert_eq!(
            dockerfile.copied_binaries(),
            ships,
            "{file}: the runtime image carries exactly these binaries"
        );
        assert!(
            ships.is_subset(&built),
            "{file}: ships what it did not build"
        );
        assert_eq!(dockerfile.entrypoint_binary(), binary, "{file}: ENTRYPOINT");
    }
}

#[test]
fn dockerfiles_cache_dependencies_and_build_locked() {
    for (dockerfile, _, _) in dockerfiles() {
        let file = dockerfile.file;
        let runs: Vec<(&str, &str)> = dockerfile
            .stages
            .iter()
            .flat_map(|s| s.all("RUN").map(move |r| (s.name.as_str(), r)))
            .collect();
        assert!(
            runs.iter().any(|(_, r)| r.contains("cargo chef prepare")),
            "{file}: a planner stage runs `cargo chef prepare`"
        );
        let builds: Vec<&&str> = runs
            .iter()
            .filter(|(_, r)| r.contains("cargo build") || r.contains("cargo chef cook"))
            .map(|(_, r)| r)
            .collect();
        assert!(builds.len() >= 2, "{file}: cook, then build");
        for build in builds {
            assert!(
                build.contains("--locked"),
                "{file}: `{build}` without --locked"
            );
            assert!(
                build.contains("--release"),
                "{file}: `{build}` without --release"
            );
        }
        // In the stage that builds: cook before the sources are copied, build after.
        let (builder, _) = runs
            .iter()
            .find(|(_, r)| r.contains("cargo build"))
            .expect("a cargo build");
        let order: Vec<&str> = dockerfile
            .stage(builder)
            .instructions
            .iter()
            .filter_map(|(keyword, arguments)| match keyword.as_str() {
                "RUN" if arguments.contains("cargo chef cook") => Some("cook"),
                "RUN" if arguments.contains("cargo build") => Some("build"),
                "COPY" if arguments.split_whitespace().next() == Some(".") => Some("sources"),
                _ => None,
            })
            .collect();
        assert_eq!(order, ["cook", "sources", "build"], "{file}: {builder}");
    }
}

#[test]
fn runtime_images_are_slim_non_root_and_trust_public_cas() {
    for (dockerfile, binary, _) in dockerfiles() {
        let file = dockerfile.file;
        let runtime = dockerfile.runtime();
        let user = runtime
            .all("USER")
            .last()
            .unwrap_or_else(|| panic!("{file}: the runtime stage sets no USER"));
        let user = user.split(':').next().unwrap_or_default();
        assert!(
            !user.is_empty() && user != "root" && user != "0",
            "{file}: USER {user}"
        );
        let builder_base = dockerfile.resolve(&dockerfile.stages[0].base);
        let runtime_base = dockerfile.resolve(&runtime.base);
        if runtime_base.starts_with("debian:") {
            // glibc: the runtime's Debian release is the builder's.
            let release = runtime_base
                .trim_start_matches("debian:")
                .trim_end_matches("-slim");
            assert!(
                runtime_base.ends_with("-slim") && builder_base.contains(release),
                "{file}: builder {builder_base} and runtime {runtime_base}"
            );
            assert!(
                dockerfile.runtime_programs().contains("ca-certificates"),
                "{file}: installs ca-certificates"
            );
        } else {
            assert!(
                runtime_base.starts_with("gcr.io/distroless/"),
                "{file}: runtime {runtime_base}"
            );
        }
        assert_eq!(
            dockerfile.exposed_ports(),
            default_ports(binary),
            "{file}: EXPOSE"
        );
    }
}

#[test]
fn dockerfile_healthchecks_use_programs_the_image_has() {
    for (dockerfile, binary, _) in dockerfiles() {
        let file = dockerfile.file;
        let Some(command) = dockerfile.healthcheck() else {
            continue;
        };
        let programs = dockerfile.runtime_programs();
        assert!(
            programs.contains(&command[0]),
            "{file}: HEALTHCHECK runs {} but the image has {programs:?}",
            command[0]
        );
        let port = default_port(binary).expect("a listening binary");
        let script = command.join(" ");
        for rest in script.split("/dev/tcp/").skip(1) {
            let probed = rest.split(['/', ' ']).nth(1).unwrap_or_default();
            assert_eq!(
                probed,
                port.to_string(),
                "{file}: HEALTHCHECK probes {probed}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// docker-compose.yml
// ---------------------------------------------------------------------------------------

fn compose() -> Value {
    serde_norway::from_str(&read("docker-compose.yml")).expect("docker-compose.yml is YAML")
}

fn services(compose: &Value) -> BTreeMap<String, Value> {
    compose["services"]
        .as_mapping()
        .expect("services")
        .iter()
        .map(|(k, v)| (k.as_str().expect("service name").to_owned(), v.clone()))
        .collect()
}

/// `environment` as a mapping or a `K=V` list.
fn environment(service: &Value) -> BTreeMap<String, String> {
    match &service["environment"] {
        Value::Mapping(map) => map
            .iter()
            .map(|(k, v)| {
                let value = match v {
                    Value::String(s) => s.clone(),
                    Value::Null => String::new(),
                    other => serde_norway::to_string(other)
                        .expect("scalar")
                        .trim()
                        .to_owned(),
                };
                (k.as_str().expect("name").to_owned(), value)
            })
            .collect(),
        Value::Sequence(list) => list
            .iter()
            .map(|entry| {
                let entry = entry.as_str().expect("K=V");
                let (k, v) = entry.split_once('=').unwrap_or((entry, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// (published host port, if fixed; container port) of each `ports` entry.
fn compose_ports(service: &Value) -> Vec<(Option<String>, u16)> {
    let Some(ports) = service["ports"].as_sequence() else {
        return Vec::new();
    };
    ports
        .iter()
        .map(|entry| match entry {
            Value::Mapping(_) => (
                entry["published"]
                    .as_str()
                    .map(str::to_owned)
                    .or_else(|| entry["published"].as_u64().map(|p| p.to_string())),
                u16::try_from(entry["target"].as_u64().expect("target")).expect("port"),
            ),
            Value::String(short) => {
                let short = short.trim_end_matches("/tcp");
                let parts: Vec<&str> = short.split(':').collect();
                let target = parts.last().expect("port").parse().expect("container port");
                let published = match parts.as_slice() {
                    [_] => None,
                    [.., "", _] => None,
                    [.., host, _] => Some((*host).to_owned()),
                    [] => None,
                };
                (published, target)
            }
            Value::Number(n) => (
                None,
                u16::try_from(n.as_u64().expect("port")).expect("port"),
            ),
            other => panic!("ports entry {other:?}"),
        })
        .collect()
}

/// A compose healthcheck's command as the container runs it: `CMD` form only, with `$$`
/// (compose's escape) turned back into `$`.
fn compose_healthcheck(name: &str, service: &Value) -> Vec<String> {
    let test: Vec<String> = service["healthcheck"]["test"]
        .as_sequence()
        .unwrap_or_else(|| panic!("compose {name}: a healthcheck test list"))
        .iter()
        .map(|w| w.as_str().expect("string").replace("$$", "$"))
        .collect();
    match test.first().map(String::as_str) {
        Some("CMD") => test[1..].to_vec(),
        Some("CMD-SHELL") => vec!["sh".to_owned(), "-c".to_owned(), test[1..].join(" ")],
        other => panic!("compose {name}: healthcheck test starts with {other:?}"),
    }
}

/// `${NAME}`, `${NAME:-default}` and `$NAME` in a text.
fn interpolated(text: &str) -> BTreeSet<String> {
    let text = text.replace("$$", "");
    text.split('$')
        .skip(1)
        .filter_map(|rest| {
            let rest = rest.strip_prefix('{').unwrap_or(rest);
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
}

#[test]
fn compose_sets_only_variables_the_binaries_read() {
    let compose = compose();
    let mut built = 0;
    for (name, service) in services(&compose) {
        let Some(dockerfile) = service["build"]["dockerfile"].as_str() else {
            continue;
        };
        built += 1;
        let (_, binary) = dockerfile_for(dockerfile);
        let reads = variables_of(binary);
        for (variable, _) in environment(&service) {
            assert!(
                reads.contains(&variable),
                "compose {name} sets {variable}, which {binary} does not read ({reads:?})"
            );
        }
    }
    assert_eq!(built, 2, "compose builds the gateway and the processor");
    let all = variables_of_any_binary();
    for variable in interpolated(&read("docker-compose.yml")) {
        assert!(all.contains(&variable), "compose interpolates ${variable}");
    }
}

#[test]
fn compose_ports_urls_and_healthchecks_agree_with_the_code() {
    let compose = compose();
    let services = services(&compose);
    let mut port_of_service = BTreeMap::new();
    for (name, service) in &services {
        if let Some(file) = service["build"]["dockerfile"].as_str() {
            let (dockerfile, binary) = dockerfile_for(file);
            let port = default_port(binary).expect("a listening binary");
            port_of_service.insert(name.clone(), port);
            let ports = compose_ports(service);
            assert!(!ports.is_empty(), "compose {name} publishes its port");
            for (_, target) in &ports {
                assert!(
                    default_ports(binary).contains(target),
                    "compose {name}: container port {target}"
                );
            }
            assert!(
                ports.iter().any(|(_, target)| *target == port),
                "compose {name}: publishes {port}"
            );
            assert_eq!(
                compose_healthcheck(name, service),
                dockerfile.healthcheck().expect("a HEALTHCHECK"),
                "compose {name}: the healthcheck is the Dockerfile's"
            );
            if binary == PROCESSOR {
                // `docker compose up --scale processor=3` must work.
                assert!(
                    service["container_name"].is_null(),
                    "compose {name}: container_name forbids --scale"
                );
                assert!(
                    ports.iter().all(|(published, _)| published.is_none()),
                    "compose {name}: a fixed host port forbids --scale"
                );
                assert!(
                    !environment(service).contains_key("CONSUMER_NAME"),
                    "compose {name}: replicas need distinct consumer names (the default)"
                );
            }
        }
    }
    // Every service others wait on is healthy by a check that its image can run.
    for (name, service) in &services {
        if let Some(depends_on) = service["depends_on"].as_mapping() {
            for (dependency, condition) in depends_on {
                let dependency = dependency.as_str().expect("service name");
                assert_eq!(
                    condition["condition"].as_str(),
                    Some("service_healthy"),
                    "compose {name} -> {dependency}"
                );
                assert!(
                    !services[dependency]["healthcheck"].is_null(),
                    "compose {dependency} has a healthcheck"
                );
            }
        }
        if !service["healthcheck"].is_null() && service["build"].is_null() {
            let image = service["image"].as_str().expect("image");
            let program = compose_healthcheck(name, service)
                .join(" ")
                .split_whitespace()
                .find(|w| ["pg_isready", "redis-cli"].contains(w))
                .map(str::to_owned);
            let expected = if image.starts_with("postgres:") {
                "pg_isready"
            } else if image.starts_with("redis:") {
                "redis-cli"
            } else {
                panic!("compose {name}: unknown image {image}")
            };
            assert_eq!(program.as_deref(), Some(expected), "compose {name}");
        }
    }
    let redis_command = services["redis"]["command"]
        .as_sequence()
        .map(|words| {
            words
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    assert!(
        redis_command.contains("--appendonly yes"),
        "Redis keeps an AOF"
    );
    // URLs point at a service of this file, on the port that service listens on.
    for (name, service) in &services {
        for (variable, url) in environment(service) {
            let Some((_, rest)) = url.split_once("://") else {
                continue;
            };
            let authority = rest.split('/').next().unwrap_or_default();
            let authority = authority.rsplit('@').next().unwrap_or_default();
            let (host, port) = authority.split_once(':').expect("an explicit port");
            assert!(
                services.contains_key(host),
                "compose {name}: {variable} names {host}, not a service"
            );
            if let Some(listening) = port_of_service.get(host) {
                assert_eq!(port, listening.to_string(), "compose {name}: {variable}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Procfile and deploy/
// ---------------------------------------------------------------------------------------

/// Every file under `deploy/`, relative to the workspace.
fn deploy_files() -> Vec<String> {
    fn walk(directory: &Path, found: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(directory).expect("a readable directory") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, found);
            } else {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    walk(&root().join("deploy"), &mut found);
    let mut files: Vec<String> = found
        .iter()
        .map(|p| {
            p.strip_prefix(root())
                .expect("under the root")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.sort();
    files
}

#[test]
fn procfile_runs_workspace_binaries_with_their_variables() {
    let binaries = workspace_binaries();
    let mut kinds = BTreeMap::new();
    for line in read("Procfile").lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (kind, command) = line.split_once(':').expect("KIND: command");
        let kind = kind.trim().to_owned();
        let (assigned, program) = assignments_and_program(command);
        // A launcher script of deploy/: each binary it starts, with what it assigns.
        let launched = if program.ends_with(".sh") {
            let script = command.split_whitespace().last().unwrap_or_default();
            let text = read(script);
            assert!(
                std::fs::metadata(root().join(script)).is_ok_and(|m| {
                    std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
                }),
                "Procfile {kind}: {script} is executable"
            );
            text.replace("\\\n", " ")
                .lines()
                .filter_map(|line| line.trim().strip_suffix(" &"))
                .map(assignments_and_program)
                .collect()
        } else {
            vec![(assigned, program)]
        };
        for (assigned, program) in &launched {
            assert!(
                binaries.contains(program),
                "Procfile {kind}: runs {program}"
            );
            let reads = variables_of(program);
            for name in assigned {
                assert!(
                    reads.contains(name),
                    "Procfile {kind}: {program} reads no {name}"
                );
            }
        }
        for name in interpolated(command) {
            assert!(
                PLATFORM_VARIABLES.contains(&name.as_str()),
                "Procfile {kind}: ${name}"
            );
        }
        kinds.insert(kind, launched);
    }
    let web = &kinds["web"];
    let programs: BTreeSet<&str> = web.iter().map(|(_, program)| program.as_str()).collect();
    assert_eq!(
        programs,
        BTreeSet::from([GATEWAY, PROCESSOR]),
        "Procfile web: both halves in one dyno"
    );
    for (assigned, program) in web {
        for name in [
            "METRICS_ADDR",
            if program == GATEWAY {
                "HTTP_ADDR"
            } else {
                "GRPC_ADDR"
            },
        ] {
            assert!(
                assigned.contains(&name.to_owned()),
                "web: {program} gets its own {name}"
            );
        }
    }
    assert_eq!(
        kinds["worker"],
        vec![(Vec::new(), PROCESSOR.to_owned())],
        "Procfile worker"
    );
    assert_eq!(kinds["release"][0].1, MIGRATION, "Procfile release");
}

/// `NAME=value … program args`: the names assigned, and the program's file name.
fn assignments_and_program(command: &str) -> (Vec<String>, String) {
    let mut assigned = Vec::new();
    for word in command.split_whitespace() {
        match word.split_once('=') {
            Some((name, _)) => assigned.push(name.to_owned()),
            None => {
                return (
                    assigned,
                    word.rsplit('/').next().unwrap_or_default().to_owned(),
                );
            }
        }
    }
    panic!("no program in {command:?}")
}

/// The binary a container runs: its `command`'s program, else its image's ENTRYPOINT.
fn container_binary(container: &Value) -> String {
    if let Some(program) = container["command"]
        .as_sequence()
        .and_then(|c| c.first())
        .and_then(Value::as_str)
    {
        return program.rsplit('/').next().unwrap_or_default().to_owned();
    }
    let image = container["image"].as_str().expect("image");
    let image = image.rsplit('/').next().unwrap_or_default();
    let image = image.split([':', '@']).next().unwrap_or_default();
    match image {
        "payments-processor" => PROCESSOR.to_owned(),
        "payments-gateway" => GATEWAY.to_owned(),
        other => panic!("image {other}: name it payments-processor or payments-gateway"),
    }
}

/// Every mapping that has `image` inside a `containers` list, at any depth.
fn containers(document: &Value, found: &mut Vec<Value>) {
    match document {
        Value::Mapping(map) => {
            for (key, value) in map {
                if key.as_str() == Some("containers")
                    && let Some(list) = value.as_sequence()
                {
                    found.extend(list.iter().cloned());
                }
                containers(value, found);
            }
        }
        Value::Sequence(list) => list.iter().for_each(|v| containers(v, found)),
        _ => {}
    }
}

/// The variable names a file sets for a binary, outside YAML manifests: `NAME=` after
/// `--set-env-vars`, `--update-env-vars`, `--set-secrets`, `--update-secrets` or
/// `heroku config:set`.
fn variables_set_in_text(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let flags = [
        "--set-env-vars",
        "--update-env-vars",
        "--set-secrets",
        "--update-secrets",
        "config:set",
    ];
    for flag in flags {
        for rest in text.split(flag).skip(1) {
            let rest = rest.trim_start_matches(['=', ' ']);
            let mut arguments = rest.split_whitespace().take_while(|w| !w.starts_with('-'));
            let arguments: Vec<&str> = if flag == "config:set" {
                arguments.by_ref().collect()
            } else {
                rest.split_whitespace()
                    .next()
                    .map(|w| w.split(',').collect())
                    .unwrap_or_default()
            };
            for argument in arguments {
                if let Some((name, _)) = argument.split_once('=') {
                    let name = name.trim_matches(['"', '\'', '\\']);
                    if !name.is_empty()
                        && name
                            .chars()
                            .all(|c| c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit())
                    {
                        names.insert(name.to_owned());
                    }
                }
            }
        }
    }
    names
}

#[test]
fn deploy_files_name_only_variables_the_binaries_read() {
    let files = deploy_files();
    assert!(!files.is_empty(), "deploy/ holds the recipes");
    let all = variables_of_any_binary();
    let routes = gateway_routes();
    let mut manifests: Vec<(String, Vec<Value>)> = Vec::new();
    for file in files {
        let text = read(&file);
        for name in variables_set_in_text(&text) {
            assert!(
                all.contains(&name),
                "{file} sets {name}, which no binary reads"
            );
        }
        if file.ends_with(".yaml") || file.ends_with(".yml") {
            let documents: Vec<Value> = text
                .split("\n---")
                .map(|d| {
                    serde_norway::from_str::<Value>(d).unwrap_or_else(|e| panic!("{file}: {e}"))
                })
                .filter(|d| !d.is_null())
                .collect();
            manifests.push((file, documents));
        }
    }
    // ConfigMaps and Secrets, in any file: their keys become environment variables.
    let mut sources: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (file, documents) in &manifests {
        for document in documents {
            let kind = document["kind"].as_str().unwrap_or_default();
            if kind == "ConfigMap" || kind == "Secret" {
                let name = document["metadata"]["name"]
                    .as_str()
                    .expect("name")
                    .to_owned();
                let keys: Vec<String> = ["data", "stringData"]
                    .iter()
                    .filter_map(|field| document[*field].as_mapping())
                    .flat_map(|m| m.keys().filter_map(Value::as_str).map(str::to_owned))
                    .collect();
                for key in &keys {
                    assert!(all.contains(key), "{file}: {kind} {name} holds {key}");
                }
                sources.insert(name, keys);
            }
        }
    }
    let mut checked_containers = 0;
    for (file, documents) in &manifests {
        let mut found = Vec::new();
        documents.iter().for_each(|d| containers(d, &mut found));
        for container in found {
            checked_containers += 1;
            let binary = container_binary(&container);
            let reads = variables_of(&binary);
            let mut set: Vec<String> = container["env"]
                .as_sequence()
                .map(|env| {
                    env.iter()
                        .map(|e| e["name"].as_str().expect("env name").to_owned())
                        .collect()
                })
                .unwrap_or_default();
            for source in container["envFrom"].as_sequence().into_iter().flatten() {
                for reference in ["configMapRef", "secretRef"] {
                    if let Some(name) = source[reference]["name"].as_str() {
                        set.extend(sources.get(name).cloned().unwrap_or_else(|| {
                            panic!("{file}: {reference} {name} is in no file of deploy/")
                        }));
                    }
                }
            }
            for name in set {
                assert!(reads.contains(&name), "{file}: {binary} reads no {name}");
            }
            // Ports and probes: the binary's own port, and routes that exist.
            let port = default_port(&binary);
            for entry in container["ports"].as_sequence().into_iter().flatten() {
                let declared = entry["containerPort"].as_u64().map(|p| p as u16);
                assert!(
                    declared.is_some_and(|p| default_ports(&binary).contains(&p)),
                    "{file}: {binary} containerPort {declared:?}"
                );
            }
            for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
                let probe = &container[probe];
                for handler in ["grpc", "httpGet", "tcpSocket"] {
                    let handler_value = &probe[handler];
                    if handler_value.is_null() {
                        continue;
                    }
                    if let Some(probed) = handler_value["port"].as_u64() {
                        assert_eq!(Some(probed as u16), port, "{file}: {binary} {handler}");
                    }
                    if handler == "grpc" {
                        assert_eq!(binary, PROCESSOR, "{file}: only the processor speaks gRPC");
                    }
                    if let Some(path) = handler_value["path"].as_str() {
                        assert_eq!(binary, GATEWAY, "{file}: only the gateway speaks HTTP");
                        assert!(
                            routes.contains(path),
                            "{file}: probe {path} is not a gateway route ({routes:?})"
                        );
                    }
                }
            }
        }
    }
    assert!(
        checked_containers >= 2,
        "deploy/ runs the processor and the gateway"
    );
}

/// The gateway's credentials, recipe by recipe: the local set-ups (compose, `scripts/dev.sh`)
/// state both doors open, and a gateway configured as they configure it starts; every
/// production recipe (`deploy/`, `Procfile`) gives it a signature secret and `API_TOKENS`
/// from a secret store and never opens a door.
#[test]
fn local_set_ups_say_open_and_production_recipes_set_secrets() {
    let signature_secrets = [
        "RAZORPAY_WEBHOOK_SECRET",
        "STANDARD_WEBHOOKS_SECRET",
        "STRIPE_WEBHOOK_SECRET",
    ];
    // Compose: the gateway's environment as written starts a gateway.
    let compose = compose();
    let gateway = services(&compose)
        .into_values()
        .find(|service| service["build"]["dockerfile"].as_str() == Some("Dockerfile.gateway"))
        .expect("compose runs the gateway");
    let environment = environment(&gateway);
    for door in GATEWAY_OPEN_DOORS {
        assert_eq!(
            environment.get(*door).map(String::as_str),
            Some("true"),
            "compose gateway: {door}"
        );
    }
    // `${NAME:-default}` as compose resolves it with NAME unset.
    let resolved = |value: &String| match value
        .strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
        .and_then(|inner| inner.split_once(":-"))
    {
        Some((_, default)) => default.to_owned(),
        None => value.clone(),
    };
    let started = ingest_gateway::Config::from_lookup(|name| environment.get(name).map(resolved));
    assert!(
        started.is_ok(),
        "compose's gateway would not start: {started:?}"
    );
    // dev.sh: both doors stated, and exported to the binaries.
    let dev = read("scripts/dev.sh");
    for door in GATEWAY_OPEN_DOORS {
        assert!(
            dev.contains(&format!("{door}:=true")),
            "scripts/dev.sh: {door}"
        );
        let exported = dev
            .lines()
            .filter(|line| line.trim_start().starts_with("export "))
            .any(|line| line.split_whitespace().any(|word| word == *door));
        assert!(exported, "scripts/dev.sh exports {door}");
    }
    // Production: no door opened anywhere; each recipe names a signature secret and the
    // read tokens, from a secret (a Kubernetes Secret, Cloud Run's secretKeyRef, or
    // Heroku's config vars, which are its secret store).
    let mut production = deploy_files();
    production.push("Procfile".to_owned());
    for file in &production {
        let text = read(file);
        for door in GATEWAY_OPEN_DOORS {
            assert!(!text.contains(door), "{file} opens {door}");
        }
    }
    let kubernetes_secret = read("deploy/kubernetes/secret.example.yaml");
    let gateway_secret = kubernetes_secret
        .split("\n---")
        .map(|document| serde_norway::from_str::<Value>(document).expect("YAML"))
        .find(|document| document["metadata"]["name"] == "gateway-secrets")
        .expect("a Secret gateway-secrets");
    assert_eq!(gateway_secret["kind"], "Secret");
    let held: BTreeSet<&str> = gateway_secret["stringData"]
        .as_mapping()
        .expect("stringData")
        .keys()
        .filter_map(Value::as_str)
        .collect();
    let gateway_manifest = read("deploy/kubernetes/gateway.yaml");
    assert!(
        gateway_manifest.contains("name: gateway-secrets"),
        "deploy/kubernetes/gateway.yaml takes the Secret gateway-secrets"
    );
    let cloud_run: Value =
        serde_norway::from_str(&read("deploy/cloud-run/gateway.service.yaml")).expect("YAML");
    let mut found = Vec::new();
    containers(&cloud_run, &mut found);
    let from_secrets: BTreeSet<String> = found
        .iter()
        .flat_map(|container| container["env"].as_sequence().cloned().unwrap_or_default())
        .filter(|env| env["valueFrom"]["secretKeyRef"].is_mapping())
        .filter_map(|env| env["name"].as_str().map(str::to_owned))
        .collect();
    let heroku = variables_set_in_text(&read("deploy/heroku/README.md"));
    for (recipe, names) in [
        (
            "deploy/kubernetes",
            held.iter()
                .map(|n| (*n).to_owned())
                .collect::<BTreeSet<_>>(),
        ),
        ("deploy/cloud-run", from_secrets),
        ("deploy/heroku", heroku),
    ] {
        assert!(
            names.contains("API_TOKENS"),
            "{recipe}: no API_TOKENS in {names:?}"
        );
        assert!(
            signature_secrets.iter().any(|s| names.contains(*s)),
            "{recipe}: no signature secret in {names:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Stop grace
// ---------------------------------------------------------------------------------------

/// The processor's configuration with `settings` (a deployment file's), the rest default.
fn processor_config(settings: &BTreeMap<String, String>) -> processor::Config {
    processor::Config::from_lookup(|name| settings.get(name).cloned())
        .expect("a deployment file's processor settings are valid")
}

/// `${NAME:-default}` as compose resolves it with `NAME` unset; other text as it is.
fn compose_default(value: &str) -> String {
    value
        .strip_prefix("${")
        .and_then(|rest| rest.strip_suffix('}'))
        .and_then(|inner| inner.split_once(":-"))
        .map_or_else(|| value.to_owned(), |(_, default)| default.to_owned())
}

/// A platform that kills the processor before it has finished and recorded the calls
/// under way cuts them: they are made again. Each recipe waits at least as long as the
/// processor, configured by that recipe, may take to stop.
#[test]
fn platforms_wait_for_the_processor_to_finish_its_calls() {
    let documents = |file: &str| -> Vec<Value> {
        read(file)
            .split("\n---")
            .map(|d| serde_norway::from_str::<Value>(d).unwrap_or_else(|e| panic!("{file}: {e}")))
            .filter(|d| !d.is_null())
            .collect()
    };
    let settings: BTreeMap<String, String> = documents("deploy/kubernetes/config.yaml")
        .iter()
        .find(|d| d["metadata"]["name"].as_str() == Some("processor-config"))
        .and_then(|d| d["data"].as_mapping())
        .expect("deploy/kubernetes/config.yaml: the processor-config ConfigMap")
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Value::String(s) => s.clone(),
                other => serde_norway::to_string(other)
                    .expect("scalar")
                    .trim()
                    .to_owned(),
            };
            (k.as_str().expect("name").to_owned(), value)
        })
        .collect();
    let deadline = processor_config(&settings).stop_deadline();
    let deployment = documents("deploy/kubernetes/processor.yaml")
        .into_iter()
        .find(|d| d["kind"].as_str() == Some("Deployment"))
        .expect("deploy/kubernetes/processor.yaml: a Deployment");
    let grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("deploy/kubernetes/processor.yaml sets terminationGracePeriodSeconds");
    assert!(
        grace >= deadline.as_secs(),
        "deploy/kubernetes/processor.yaml: terminationGracePeriodSeconds {grace} is shorter than the processor's stop ({deadline:?}: SHUTDOWN_GRACE and the last records)"
    );

    let compose = compose();
    let service = &services(&compose)["processor"];
    let settings: BTreeMap<String, String> = environment(service)
        .into_iter()
        .map(|(name, value)| (name, compose_default(&value)))
        .collect();
    let deadline = processor_config(&settings).stop_deadline();
    let grace = service["stop_grace_period"]
        .as_str()
        .map(|text| {
            service_support::settings::parse_duration("stop_grace_period", text)
                .expect("stop_grace_period is a duration")
        })
        .expect("docker-compose.yml: the processor sets stop_grace_period");
    assert!(
        grace >= deadline,
        "docker-compose.yml: stop_grace_period {grace:?} is shorter than the processor's stop ({deadline:?})"
    );
}

/// Cloud Run: the processor always has an instance with CPU, speaks h2c behind the front
/// end, stops inside the platform's 10 s SIGKILL, and finds its CA files where the secret
/// volumes put them; the gateway calls it over https.
#[test]
fn cloud_run_recipe_fits_the_platform() {
    let service = |file: &str| -> Value {
        serde_norway::from_str(&read(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
    };
    let processor = service("deploy/cloud-run/processor.service.yaml");
    let template = &processor["spec"]["template"];
    let annotations = &template["metadata"]["annotations"];
    assert_eq!(
        annotations["autoscaling.knative.dev/minScale"].as_str(),
        Some("1")
    );
    assert_eq!(
        annotations["run.googleapis.com/cpu-throttling"].as_str(),
        Some("false")
    );
    let container = &template["spec"]["containers"][0];
    assert_eq!(
        container["ports"][0]["name"].as_str(),
        Some("h2c"),
        "gRPC needs h2c"
    );
    let env: BTreeMap<String, String> = container["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .filter_map(|e| {
            Some((
                e["name"].as_str()?.to_owned(),
                e["value"].as_str()?.to_owned(),
            ))
        })
        .collect();
    let grace = env
        .get("SHUTDOWN_GRACE")
        .expect("SHUTDOWN_GRACE set for Cloud Run");
    let config = processor::Config::from_lookup(|name| match name {
        "SHUTDOWN_GRACE" => Some(grace.clone()),
        "REDIS_URL" => Some("rediss://10.0.0.3:6378/0".to_owned()),
        _ => env.get(name).cloned(),
    })
    .expect("the processor's Cloud Run settings are valid");
    assert!(
        config.shutdown_grace < std::time::Duration::from_secs(10),
        "SHUTDOWN_GRACE must end before Cloud Run's SIGKILL, 10 s after SIGTERM"
    );
    let mounts: Vec<&str> = container["volumeMounts"]
        .as_sequence()
        .into_iter()
        .flatten()
        .filter_map(|m| m["mountPath"].as_str())
        .collect();
    for file in config.redis_tls.ca_file.iter() {
        assert!(
            mounts.iter().any(|mount| file.starts_with(mount)),
            "REDIS_TLS_CA_FILE={} is on no mounted volume",
            file.display()
        );
    }
    let cloudsql = read("deploy/cloud-run/README.md");
    let root_cert = cloudsql
        .split("sslrootcert=")
        .nth(1)
        .and_then(|rest| rest.split(['\'', '`', ' ', '&']).next())
        .expect("the README's DATABASE_URL names sslrootcert");
    assert!(
        mounts.iter().any(|mount| root_cert.starts_with(mount)),
        "sslrootcert={root_cert} is on no mounted volume"
    );

    let gateway = service("deploy/cloud-run/gateway.service.yaml");
    let gateway_env = &gateway["spec"]["template"]["spec"]["containers"][0]["env"];
    let url = gateway_env
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|e| e["name"].as_str() == Some("PROCESSOR_URL"))
        .and_then(|e| e["value"].as_str())
        .expect("PROCESSOR_URL");
    assert!(
        url.starts_with("https://"),
        "Cloud Run serves services over https: {url}"
    );
}

/// Heroku's recipe scales both process types and claims nothing unproven.
#[test]
fn heroku_recipe_is_a_working_recipe() {
    let recipe = read("deploy/heroku/README.md");
    assert!(recipe.contains("heroku ps:scale web=1 worker=1"));
    for file in deploy_files() {
        assert!(
            !read(&file).contains("not a working target"),
            "{file} still disowns a target"
        );
    }
}
