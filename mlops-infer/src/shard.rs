//! Splitting input files among worker processes without coordination.

use sha2::{Digest, Sha256};

/// The worker, of `workers`, that owns `file`: a stable hash of the file's name, so every
/// worker, on any machine and any build, computes the same split.
///
/// ```
/// use mlops_infer::shard_of;
/// let files = ["in/part-0.parquet", "in/part-1.parquet", "in/part-2.parquet"];
/// let owners: Vec<usize> = files.iter().map(|f| shard_of(f, 2)).collect();
/// assert!(owners.iter().all(|&w| w < 2));
/// assert_eq!(owners, files.iter().map(|f| shard_of(f, 2)).collect::<Vec<_>>());
/// ```
///
/// # Panics
/// When `workers` is 0.
pub fn shard_of(file: &str, workers: usize) -> usize {
    assert!(workers > 0, "at least one worker");
    let digest = Sha256::digest(file.as_bytes());
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(prefix) % workers as u64) as usize
}
