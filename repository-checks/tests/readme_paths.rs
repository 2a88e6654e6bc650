//! `README.md` names files (its file map, the hops of a webhook, where a test lives): every
//! path it names in backticks exists, so the map cannot drift from the tree unseen.
//!
//! A backticked word is taken for a path when it begins with one of the repository's own
//! top-level entries (`processor/…`, `deploy/…`) or ends like a source file (`.rs`,
//! `.sh`, …); such a path is read from the repository's root, so a file is named in full
//! (`processor/src/stream/consumer.rs`, not `stream/consumer.rs`). Routes (`/metrics`),
//! URLs, media types and files that only exist at run time (`.dev/…`) are not paths here.
#![allow(clippy::expect_used)]

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

/// Endings of the files a README names.
const FILE_ENDINGS: &[&str] = &[
    ".rs", ".sh", ".py", ".proto", ".json", ".toml", ".yml", ".yaml", ".lua", ".md",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds repository-checks/")
        .to_path_buf()
}

/// What stands between single backticks, outside fenced code blocks.
fn code_spans(markdown: &str) -> Vec<String> {
    let mut spans = Vec::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        spans.extend(line.split('`').skip(1).step_by(2).map(str::to_owned));
    }
    spans
}

/// The code spans that name a file or folder of the repository.
fn named_paths(markdown: &str, top_level: &BTreeSet<String>) -> BTreeSet<String> {
    code_spans(markdown)
        .into_iter()
        .filter(|span| {
            let not_a_path = span.is_empty()
                || span.starts_with(['/', '.'])
                || span.contains(char::is_whitespace)
                || span.contains("://")
                || span.contains(['=', '{', '*', '…', '<', '?']);
            if not_a_path {
                return false;
            }
            let first = span.split('/').next().unwrap_or_default();
            (span.contains('/') && top_level.contains(first))
                || FILE_ENDINGS.iter().any(|ending| span.ends_with(ending))
        })
        .collect()
}

#[test]
fn every_path_the_readme_names_exists() {
    let root = root();
    let top_level: BTreeSet<String> = fs::read_dir(&root)
        .expect("read the repository's root")
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.') && name != "target")
        .collect();
    let readme = fs::read_to_string(root.join("README.md")).expect("read README.md");
    let named = named_paths(&readme, &top_level);
    assert!(
        named.len() > 20,
        "the README names its files; found only {named:?}"
    );
    let missing: Vec<&String> = named
        .iter()
        .filter(|path| !root.join(path).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "README.md names paths that are not in the tree (name them from the root): {missing:?}"
    );
}

#[test]
fn shorthand_and_moved_paths_are_caught() {
    let top_level: BTreeSet<String> = ["processor", "deploy"].map(str::to_owned).into();
    let named = named_paths(
        "`stream/consumer.rs` and `processor/src/gone.rs`, `deploy/heroku/`, but not \
         `/metrics`, `application/json`, `redis://host/0`, `.dev/stack.log` nor\n\
         ```\nprocessor/src/in_a_block.rs\n```\n",
        &top_level,
    );
    assert_eq!(
        named,
        [
            "deploy/heroku/",
            "processor/src/gone.rs",
            "stream/consumer.rs"
        ]
        .map(str::to_owned)
        .into()
    );
}
