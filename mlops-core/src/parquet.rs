//! Parquet files on the local file system.

use std::fs::File;
use std::path::Path;

use polars::prelude::{DataFrame, ParquetReader, ParquetWriter, SerReader};

use crate::error::{Error, Result};

/// Reads a Parquet file into a frame.
///
/// # Errors
/// [`Error::Io`] naming the file when it cannot be opened, [`Error::Polars`] when it is not
/// valid Parquet.
pub fn read_parquet(path: &Path) -> Result<DataFrame> {
    let file = File::open(path).map_err(|source| Error::Io { operation: "opening", path: path.into(), source })?;
    Ok(ParquetReader::new(file).finish()?)
}

/// Writes `frame` to a Parquet file atomically: into a temporary file beside it, then
/// renamed, so readers never see half a file.
///
/// # Errors
/// [`Error::Io`] naming the file, [`Error::Polars`] when encoding fails.
pub fn write_parquet(frame: &mut DataFrame, path: &Path) -> Result<()> {
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let staging = path.with_file_name(format!(".{file_name}.partial"));
    let io = |operation, source| Error::Io { operation, path: path.into(), source };
    let file = File::create(&staging).map_err(|e| io("creating", e))?;
    if let Err(e) = ParquetWriter::new(file).finish(frame) {
        let _ = std::fs::remove_file(&staging);
        return Err(e.into());
    }
    std::fs::rename(&staging, path).map_err(|e| io("renaming into place", e))
}
