//! Files and directories published whole or not at all: written under a unique staging
//! name beside their destination, flushed to disk, then renamed into place, so concurrent
//! writers never share a staging file and a crash never leaves a torn file behind.

use std::fs::{self, File};
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `path` through `write`, atomically: readers see the old file or the whole new
/// one. Of concurrent writers, the last to finish wins.
pub(crate) fn write_file(path: &Path, write: impl FnOnce(&mut File) -> Result<()>) -> Result<()> {
    let parent = parent_of(path);
    let mut staging = tempfile::Builder::new()
        .prefix(&staging_prefix(path))
        .suffix(".partial")
        .tempfile_in(parent)
        .map_err(|e| Error::io("creating a staging file for", path, e))?;
    write(staging.as_file_mut())?;
    staging.as_file().sync_all().map_err(|e| Error::io("flushing", path, e))?;
    staging.persist(path).map_err(|e| Error::io("renaming into place", path, e.error))?;
    sync_dir(parent);
    Ok(())
}

/// Creates directory `dir` filled by `fill` (given the staging directory), atomically: it
/// appears complete or not at all. A `dir` that already exists and is not empty is left
/// alone, and `Ok(false)` says so.
pub(crate) fn publish_dir(dir: &Path, fill: impl FnOnce(&Path) -> Result<()>) -> Result<bool> {
    let parent = parent_of(dir);
    fs::create_dir_all(parent).map_err(|e| Error::io("creating directory", parent, e))?;
    let staging = tempfile::Builder::new()
        .prefix(&staging_prefix(dir))
        .suffix(".partial")
        .tempdir_in(parent)
        .map_err(|e| Error::io("creating a staging directory for", dir, e))?;
    fill(staging.path())?;
    sync_dir(staging.path());
    // An empty directory made by the caller beforehand is taken over.
    if fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_none()) {
        let _ = fs::remove_dir(dir);
    }
    match fs::rename(staging.path(), dir) {
        Ok(()) => {
            // Renamed away: nothing is left for the guard to remove.
            let _ = staging.keep();
            sync_dir(parent);
            Ok(true)
        }
        Err(_) if fs::read_dir(dir).is_ok_and(|mut entries| entries.next().is_some()) => Ok(false),
        Err(e) => Err(Error::io("renaming into place", dir, e)),
    }
}

/// Writes a file inside a staging directory and flushes it.
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| Error::io("creating directory", parent, e))?;
    }
    let mut file = File::create(path).map_err(|e| Error::io("creating", path, e))?;
    std::io::Write::write_all(&mut file, bytes).map_err(|e| Error::io("writing", path, e))?;
    file.sync_all().map_err(|e| Error::io("flushing", path, e))
}

fn parent_of(path: &Path) -> &Path {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// `.{name}.`, the start of a staging name (`.{name}.<random>.partial`): hidden, unique,
/// and named after what it becomes.
fn staging_prefix(path: &Path) -> String {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    format!(".{name}.")
}

/// Flushes a directory's entries (the rename) to disk, where the platform allows it.
fn sync_dir(dir: &Path) {
    if let Ok(handle) = File::open(dir) {
        let _ = handle.sync_all();
    }
}
