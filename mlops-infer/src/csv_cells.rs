//! What a CSV text may cost once read: rows shorter than the header (blank lines included)
//! are filled with nulls, so a wide header over many short lines would make a frame far
//! larger than the text. Both a request body and a stream's file are held to this bound
//! before they are read.

/// A CSV text may fill this many cells per byte, beyond [`CELL_ALLOWANCE`].
pub(crate) const MAX_CELLS_PER_BYTE: usize = 8;
/// Cells a CSV text may fill whatever its size.
pub(crate) const CELL_ALLOWANCE: usize = 1 << 16;

/// The cells a CSV text of `bytes` bytes may fill.
pub(crate) fn cells_allowed(bytes: usize) -> usize {
    MAX_CELLS_PER_BYTE.saturating_mul(bytes).saturating_add(CELL_ALLOWANCE)
}

/// Refuses a CSV text whose lines under its header would fill more than
/// [`cells_allowed`], with the reason. Lines and header fields are over-counted (quoted
/// newlines and commas), which only errs towards accepting: a well-formed CSV has a byte
/// per cell.
pub(crate) fn check_csv_cells(text: &[u8]) -> Result<(), String> {
    let header = text.split(|b| *b == b'\n').next().unwrap_or_default();
    let fields = header.iter().filter(|b| **b == b',').count() + 1;
    let lines = text.iter().filter(|b| **b == b'\n').count() + 1;
    if lines.saturating_mul(fields) > cells_allowed(text.len()) {
        return Err(format!(
            "{lines} lines under a header of {fields} columns: rows shorter than the header (blank lines \
             included) would make a frame far larger than the text"
        ));
    }
    Ok(())
}
