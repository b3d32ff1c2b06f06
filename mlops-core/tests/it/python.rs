//! The Python environment of the tests (`MLOPS_PYTHON`, which `scripts/test.sh` sets): a
//! missing one skips the test with a printed reason, or fails it under
//! `MLOPS_REQUIRE_SERVERS=1`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The interpreter, or `None` after saying why the test is skipped.
pub fn python() -> Option<String> {
    match std::env::var("MLOPS_PYTHON") {
        Ok(python) if !python.is_empty() => Some(python),
        _ if std::env::var("MLOPS_REQUIRE_SERVERS").is_ok_and(|v| v == "1") => {
            panic!(
                "Python with the test packages is required (MLOPS_REQUIRE_SERVERS=1) but MLOPS_PYTHON is not set; run scripts/test.sh"
            )
        }
        _ => {
            eprintln!(
                "skipped: Python with the test packages is not available (MLOPS_PYTHON is not set; scripts/test.sh sets it)"
            );
            None
        }
    }
}

/// A file of this crate's test sources, found through `CARGO_MANIFEST_DIR` at run time.
pub fn test_file(relative: &str) -> PathBuf {
    let root = std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_else(|| env!("CARGO_MANIFEST_DIR").into());
    Path::new(&root).join(relative)
}

/// Runs `script` (under `tests/it/`) with `args`, panicking with its output on failure.
pub fn run(python: &str, script: &str, args: &[&str]) {
    let output = Command::new(python).arg(test_file(&format!("tests/it/{script}"))).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The directory `script` (under `tests/it/`) fills when run as `script DIR ROWS`, made
/// once per test run in `cell`; `None` when Python is missing.
pub fn made_once(cell: &'static OnceLock<Option<PathBuf>>, script: &str, rows: usize) -> Option<&'static Path> {
    cell.get_or_init(|| {
        let python = python()?;
        let dir = tempfile::tempdir().unwrap().keep();
        run(&python, script, &[dir.to_str().unwrap(), &rows.to_string()]);
        Some(dir)
    })
    .as_deref()
}
