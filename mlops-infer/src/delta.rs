//! Inference tables on Delta Lake (feature `delta`): scored rows appended by any number of
//! writers, labels merged in when they arrive, incremental scoring that never scores a record
//! twice.

pub(crate) mod arrow;
// The workspace's second exception to `unsafe_code`: the Arrow C data interface between
// Polars and arrow-rs.
#[allow(unsafe_code)]
mod arrow_ffi;
mod feature_store;

pub(crate) use arrow::batches_to_frame;
pub(crate) mod inference_table;
mod labels;
mod location;
mod sharded_job;

pub use feature_store::{DeltaFeatureStore, FEATURE_KEYS_PROPERTY, FEATURE_TIMESTAMP_PROPERTY};
pub use inference_table::{
    ACTUAL_LABEL, Appended, FilesScored, INCREMENTAL_APP_ID, INCREMENTAL_ATTEMPTS, IncrementalRun, InferenceTable,
    InferenceTableConfig, ROW_ID, TimeWindow,
};
pub use labels::{LabelMerge, RECEIVED_AT, RejectedLabel};
pub use location::TableLocation;
pub use sharded_job::{DEFAULT_COMMIT_BYTES, ShardRun, ShardedJob};
