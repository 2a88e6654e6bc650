//! Nothing but tests: `tests/deployment_files.rs` holds the deployment files to the code,
//! `tests/dependency_graph.rs` the workspace's crates to their layering, and
//! `tests/readme_paths.rs` the README's file map to the tree.
