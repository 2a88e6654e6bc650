//! Nothing but tests: `tests/deployment_files.rs` holds the deployment files to the code,
//! `tests/dependency_graph.rs` the workspace's crates to their layering.
