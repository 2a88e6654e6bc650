//! The workspace's crates, as `cargo metadata` resolves them, dev-dependencies included:
//! no cycle, and the support crates below the binaries. Tests that need both binaries
//! live in `end-to-end`, except the processor's fault tests, which put a gateway in front
//! of the processor binary (only the processor's own tests can run that binary).
#![allow(clippy::expect_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
};

use serde_json::Value;

/// Workspace crate -> the workspace crates it depends on, of any kind (normal, build, dev).
fn workspace_graph() -> BTreeMap<String, BTreeSet<String>> {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--locked", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata is JSON");
    let members: BTreeSet<&str> = metadata["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let name_of: BTreeMap<&str, &str> = metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter_map(|package| Some((package["id"].as_str()?, package["name"].as_str()?)))
        .collect();
    let mut graph = BTreeMap::new();
    for node in metadata["resolve"]["nodes"].as_array().expect("resolve") {
        let id = node["id"].as_str().expect("node id");
        if !members.contains(id) {
            continue;
        }
        let dependencies: BTreeSet<String> = node["deps"]
            .as_array()
            .expect("deps")
            .iter()
            .filter_map(|dependency| dependency["pkg"].as_str())
            .filter(|pkg| members.contains(pkg))
            .map(|pkg| name_of[pkg].to_owned())
            .collect();
        graph.insert(name_of[id].to_owned(), dependencies);
    }
    graph
}

/// A path that leads from `start` back to it, if any.
fn cycle_through(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![vec![start.to_owned()]];
    let mut seen = BTreeSet::new();
    while let Some(path) = stack.pop() {
        let last = path.last().expect("a path is never empty");
        for next in graph.get(last).into_iter().flatten() {
            let mut longer = path.clone();
            longer.push(next.clone());
            if next == start {
                return Some(longer);
            }
            if seen.insert(next.clone()) {
                stack.push(longer);
            }
        }
    }
    None
}

#[test]
fn no_crate_depends_on_itself_even_through_dev_dependencies() {
    let graph = workspace_graph();
    assert!(graph.contains_key("processor") && graph.contains_key("test-support"));
    for name in graph.keys() {
        assert_eq!(cycle_through(&graph, name), None, "a cycle through {name}");
    }
}

#[test]
fn support_crates_sit_below_the_binaries() {
    let graph = workspace_graph();
    let binaries = [
        "processor",
        "ingest-gateway",
        "migration",
        "naive-path",
        "hop",
        "lean-path",
    ];
    for support in ["payments-proto", "service-support", "test-support"] {
        let reached = graph.get(support).expect("a workspace crate");
        for binary in binaries {
            assert!(!reached.contains(binary), "{support} depends on {binary}");
        }
    }
    let gateway = &graph["ingest-gateway"];
    assert!(
        !gateway.contains("processor"),
        "the gateway depends on the processor: {gateway:?}"
    );
    for (name, dependencies) in &graph {
        for tests_only in ["repository-checks", "end-to-end"] {
            assert!(
                !dependencies.contains(tests_only),
                "{name} depends on {tests_only}"
            );
        }
    }
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(name, deps)| {
        (
            name.to_owned(),
            deps.into_iter().map(str::to_owned).collect(),
        )
    })
    .collect();
    assert_eq!(
        cycle_through(&graph, "a"),
        Some(
            vec!["a", "b", "c", "a"]
                .into_iter()
                .map(str::to_owned)
                .collect()
        )
    );
    assert_eq!(cycle_through(&graph, "d"), None);
}
