//! Splitting work among worker processes: a stable hash of a name, a worker's place in a job
//! of a fixed number of workers, and files balanced over workers by size.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::num::NonZeroUsize;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The environment variable Kubernetes sets to a pod's index in an Indexed Job
/// (`completionMode: Indexed`): `0` to `completions - 1`.
pub const JOB_COMPLETION_INDEX: &str = "JOB_COMPLETION_INDEX";

/// The worker, of `workers`, that owns `file`: a stable hash of the file's name, so every
/// worker, on any machine and any build, computes the same split.
///
/// ```
/// use mlops_infer::shard_of;
/// use std::num::NonZeroUsize;
/// let workers = NonZeroUsize::new(2).unwrap();
/// let files = ["in/part-0.parquet", "in/part-1.parquet", "in/part-2.parquet"];
/// let owners: Vec<usize> = files.iter().map(|f| shard_of(f, workers)).collect();
/// assert!(owners.iter().all(|&w| w < 2));
/// assert_eq!(owners, files.iter().map(|f| shard_of(f, workers)).collect::<Vec<_>>());
/// ```
pub fn shard_of(file: &str, workers: NonZeroUsize) -> usize {
    let digest = Sha256::digest(file.as_bytes());
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&digest[..8]);
    (u64::from_be_bytes(prefix) % workers.get() as u64) as usize
}

/// One worker's place in a job of a fixed number of workers: shard `index` of `count`.
///
/// ```
/// use mlops_infer::Shard;
/// let shard = Shard::new(2, 8)?;
/// assert_eq!((shard.index(), shard.count().get()), (2, 8));
/// assert!(Shard::new(8, 8).is_err());
/// # Ok::<(), mlops_infer::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    index: usize,
    count: NonZeroUsize,
}

impl Shard {
    /// Shard `index` (from 0) of `count`.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for no shards or an index outside them.
    pub fn new(index: usize, count: usize) -> Result<Self> {
        let Some(count) = NonZeroUsize::new(count) else {
            return Err(Error::InvalidArgument("a job needs at least one shard".to_owned()));
        };
        if index >= count.get() {
            return Err(Error::InvalidArgument(format!(
                "shard index {index} is outside a job of {count} shards (0 to {})",
                count.get() - 1
            )));
        }
        Ok(Self { index, count })
    }

    /// The shard of `count` that this process is, read from [`JOB_COMPLETION_INDEX`], as a
    /// pod of a Kubernetes Indexed Job with `completions: count` finds it.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the variable when it is unset or not an index of
    /// `count` shards.
    pub fn from_env(count: usize) -> Result<Self> {
        Self::from_env_var(JOB_COMPLETION_INDEX, count)
    }

    /// The shard of `count` whose index environment variable `variable` holds.
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_env_var(variable: &str, count: usize) -> Result<Self> {
        let value = std::env::var(variable).map_err(|e| {
            Error::InvalidArgument(format!("environment variable `{variable}` should hold the shard index: {e}"))
        })?;
        let index = value.trim().parse::<usize>().map_err(|e| {
            Error::InvalidArgument(format!("environment variable `{variable}` holds `{value}`, not a shard index: {e}"))
        })?;
        Self::new(index, count).map_err(|e| Error::InvalidArgument(format!("environment variable `{variable}`: {e}")))
    }

    /// This shard's index, from 0.
    pub fn index(&self) -> usize {
        self.index
    }

    /// How many shards the job has.
    pub fn count(&self) -> NonZeroUsize {
        self.count
    }
}

/// The items of `sizes` (by position) assigned to `shards` so that their sizes balance:
/// largest first, each to the shard with the least so far (the lowest index on a tie), so no
/// shard ends more than the largest item above another. The same on every machine for the
/// same sizes in the same order; each shard's items are in their input order.
///
/// ```
/// use mlops_infer::assign_by_size;
/// use std::num::NonZeroUsize;
/// let sizes = [900, 100, 400, 500, 100];
/// let shards = assign_by_size(&sizes, NonZeroUsize::new(2).unwrap());
/// assert_eq!(shards, [vec![0, 1], vec![2, 3, 4]]);
/// ```
pub fn assign_by_size(sizes: &[u64], shards: NonZeroUsize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..sizes.len()).collect();
    order.sort_by_key(|&i| (Reverse(sizes[i]), i));
    let mut assigned: Vec<Vec<usize>> = vec![Vec::new(); shards.get()];
    let mut loads: BinaryHeap<Reverse<(u64, usize)>> = (0..shards.get()).map(|shard| Reverse((0, shard))).collect();
    for item in order {
        let Some(Reverse((load, shard))) = loads.pop() else { break };
        assigned[shard].push(item);
        loads.push(Reverse((load.saturating_add(sizes[item]), shard)));
    }
    for items in &mut assigned {
        items.sort_unstable();
    }
    assigned
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two() -> NonZeroUsize {
        NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN)
    }

    #[test]
    fn every_item_goes_to_exactly_one_shard_and_the_loads_balance() {
        let sizes: Vec<u64> = (0..200u64).map(|i| (i * 7919) % 1000 + 1).collect();
        let shards = NonZeroUsize::new(7).unwrap_or(NonZeroUsize::MIN);
        let assigned = assign_by_size(&sizes, shards);
        let mut seen: Vec<usize> = assigned.iter().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..sizes.len()).collect::<Vec<_>>());
        let loads: Vec<u64> = assigned.iter().map(|items| items.iter().map(|&i| sizes[i]).sum()).collect();
        let largest = sizes.iter().copied().max().unwrap_or(0);
        let (min, max) = (loads.iter().min().copied().unwrap_or(0), loads.iter().max().copied().unwrap_or(0));
        assert!(max - min <= largest, "{loads:?}");
    }

    #[test]
    fn more_shards_than_items_leaves_some_empty() {
        assert_eq!(assign_by_size(&[5], two()), [vec![0], vec![]]);
        assert_eq!(assign_by_size(&[], two()), [Vec::<usize>::new(), vec![]]);
    }

    #[test]
    fn a_bad_index_names_the_variable() {
        let error = Shard::from_env_var("MLOPS_SHARD_INDEX_THAT_NOBODY_SETS", 4).unwrap_err();
        assert!(error.to_string().contains("MLOPS_SHARD_INDEX_THAT_NOBODY_SETS"), "{error}");
        assert!(Shard::new(0, 0).is_err());
    }
}
