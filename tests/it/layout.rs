//! The house follows the split: the runtime (`src/runtime/`) never imports the benchmark, the
//! command line or the test kit; they import it. The web console (`src/console/`) stands on the
//! runtime alone.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_runtime_never_imports_the_benchmark_the_command_line_or_the_test_kit() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/runtime");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() > 20, "the runtime's files are found: {}", files.len());
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for house in ["crate::bench", "crate::cli", "crate::testkit", "super::super::bench"] {
                if line.contains(house) {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(found.is_empty(), "the runtime imports from outside it:\n{}", found.join("\n"));
}

#[test]
fn the_console_uses_only_the_runtime() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/console");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    assert!(files.len() >= 4, "the console's files are found: {}", files.len());
    let mut found = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for house in ["crate::bench", "crate::cli", "crate::testkit"] {
                if line.contains(house) {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(found.is_empty(), "the console imports from outside the runtime:\n{}", found.join("\n"));
}
