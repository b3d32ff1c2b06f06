//! Integration tests of mlops-infer, one binary.

mod batch;
