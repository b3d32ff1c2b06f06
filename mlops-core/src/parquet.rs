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

/// Writes `frame` to a Parquet file atomically: into a staging file of its own beside it,
/// flushed to disk, then renamed, so readers never see half a file and concurrent writers
/// never clobber each other's staging file (the last to finish wins).
///
/// # Errors
/// [`Error::Io`] naming the file, [`Error::Polars`] when encoding fails.
pub fn write_parquet(frame: &mut DataFrame, path: &Path) -> Result<()> {
    crate::atomic_write::write_file(path, |file| {
        ParquetWriter::new(file).finish(frame)?;
        Ok(())
    })
}
