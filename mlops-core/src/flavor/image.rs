//! Image classification with candle: a packaged convolutional network (safetensors weights)
//! that carries its own feature extraction (base64 JPEG/PNG decoding, resizing,
//! normalization) and label names.

mod network;
mod preprocess;
mod train;

pub use network::ConvNet;
pub use preprocess::{ColorMode, ImageBatch, ImagePreprocessing, ResizeFilter};
pub use train::{EpochReport, ImageClassifierParams, ValidImageClassifierParams};

use std::sync::Arc;

use bytes::Bytes;
use candle_core::{D, Device, Tensor};
use polars::prelude::{Column, DataFrame, DataType, IntoColumn, ListChunked, NamedFrom, Series, StructChunked};
use serde::{Deserialize, Serialize};

use self::network::Network;
use crate::error::{Error, Result};
use crate::flavor::Flavor;
use crate::model::{Model, ModelWrapper};
use crate::package::Package;
use crate::signature::{ColSpec, ColumnType, Schema, Signature};

/// Flavor name of packaged [`ImageClassifier`]s.
pub const IMAGE_CLASSIFIER: &str = "image_classifier";

const SPEC_FILE: &str = "image_classifier.json";
const WEIGHTS_FILE: &str = "weights.safetensors";

/// Whether each image has one label or any number of them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageTask {
    /// One label per image: scores are a softmax over the labels.
    MultiClass,
    /// Any labels per image: each score is a sigmoid, and labels at or above `threshold`
    /// are predicted.
    MultiLabel {
        /// Score at which a label is predicted, in (0, 1).
        threshold: f32,
    },
}

/// Everything but the weights: preprocessing, network layout, labels and task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSpec {
    /// Feature extraction.
    pub preprocessing: ImagePreprocessing,
    /// The network's layout.
    pub network: ConvNet,
    /// Label names, in logit order.
    pub labels: Vec<String>,
    /// Softmax or sigmoids.
    pub task: ImageTask,
}

impl ImageSpec {
    pub(crate) fn check(&self) -> Result<()> {
        self.preprocessing.check()?;
        self.network.check(self.preprocessing.height, self.preprocessing.width)?;
        if self.labels.len() < 2 && self.task == ImageTask::MultiClass {
            return Err(Error::InvalidArgument(format!(
                "a multi-class model needs two labels or more, got {:?}",
                self.labels
            )));
        }
        if self.labels.is_empty() {
            return Err(Error::InvalidArgument("an image classifier needs at least one label".into()));
        }
        if let Some((i, label)) = self.labels.iter().enumerate().find(|(i, l)| self.labels[..*i].contains(l)) {
            return Err(Error::InvalidArgument(format!("label `{label}` appears twice (position {i})")));
        }
        if let ImageTask::MultiLabel { threshold } = self.task
            && !(threshold > 0.0 && threshold < 1.0)
        {
            return Err(Error::InvalidArgument(format!(
                "the multi-label threshold must be in (0, 1), got {threshold}"
            )));
        }
        Ok(())
    }

    fn signature(&self) -> Result<Signature> {
        // Nullable: a missing image is a bad row like any other, reported or refused by row.
        let inputs =
            Schema::new(vec![ColSpec::new(self.preprocessing.column.as_str(), ColumnType::String).nullable()])?;
        let outputs = Schema::new(vec![
            ColSpec::new("prediction", ColumnType::String),
            ColSpec::new("prediction_index", ColumnType::Long),
        ])?;
        Ok(Signature::new(inputs).with_outputs(outputs))
    }
}

/// What [`Model::predict`] does with a row whose image cannot be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BadImages {
    /// Fail the whole call, naming the first bad row.
    #[default]
    Fail,
    /// Score the other rows; the bad ones get null predictions and their reason in an
    /// `error` column.
    Report,
}

/// A trained image classifier.
///
/// [`Model::predict`] takes the image column and returns, per row, `prediction` (the
/// top label), `prediction_index` (its position in the labels), `scores` (a struct of one
/// field per label) and, for multi-label models, `labels` (every label at or above the
/// threshold).
#[derive(Debug, Clone)]
pub struct ImageClassifier {
    spec: ImageSpec,
    signature: Signature,
    network: Network,
    weights: Bytes,
    bad_images: BadImages,
}

impl ImageClassifier {
    /// A classifier from its spec and safetensors weights (see [`ConvNet`] for the
    /// names and shapes), trained here or elsewhere.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an inconsistent spec, [`Error::Tensor`] when the
    /// weights lack a tensor or have the wrong shape.
    pub fn from_safetensors(spec: ImageSpec, weights: impl Into<Bytes>) -> Result<Self> {
        let weights = weights.into();
        spec.check()?;
        let p = &spec.preprocessing;
        let network = network::load(&spec.network, &weights, p.mode.channels(), p.height, p.width, spec.labels.len())?;
        let signature = spec.signature()?;
        Ok(Self { spec, signature, network, weights, bad_images: BadImages::Fail })
    }

    /// The classifier a package of this flavor holds (what the flavor registry loads, as
    /// this concrete type, so its policy for bad images can be changed).
    ///
    /// # Errors
    /// [`Error::InvalidPackage`] for a package of another flavor or unreadable files.
    pub fn from_package(package: &Package) -> Result<Self> {
        if package.manifest().flavor != IMAGE_CLASSIFIER {
            return Err(Error::InvalidPackage(format!(
                "a `{}` package is not an image classifier",
                package.manifest().flavor
            )));
        }
        let spec: ImageSpec = package.json_file(SPEC_FILE)?;
        let weights = package.file(WEIGHTS_FILE)?.clone();
        Self::from_safetensors(spec, weights).map_err(|e| Error::InvalidPackage(e.to_string()))
    }

    /// The same model with another policy for unreadable images.
    pub fn with_bad_images(mut self, policy: BadImages) -> Self {
        self.bad_images = policy;
        self
    }

    /// Preprocessing, layout, labels and task.
    pub fn spec(&self) -> &ImageSpec {
        &self.spec
    }

    /// The weights as a safetensors file.
    pub fn weights(&self) -> &[u8] {
        &self.weights
    }

    /// Packages the spec and the weights, with the first rows of `input_example`.
    ///
    /// # Errors
    /// Schema errors when `input_example` breaks the signature.
    pub fn package(&self, input_example: Option<&DataFrame>) -> Result<Package> {
        let mut builder = Package::builder(IMAGE_CLASSIFIER, self.signature.clone())
            .json_file(SPEC_FILE, &self.spec)?
            .file(WEIGHTS_FILE, self.weights.clone())?
            .metadata("labels", self.spec.labels.clone())
            .metadata("input_size", vec![self.spec.preprocessing.height, self.spec.preprocessing.width]);
        if let Some(example) = input_example {
            builder = builder.input_example(example)?;
        }
        builder.build()
    }

    /// Scores per label (softmax or sigmoids), `rows × labels`, row-major.
    pub(crate) fn scores(&self, batch: &ImageBatch) -> Result<Vec<f32>> {
        let p = &self.spec.preprocessing;
        if batch.rows == 0 {
            return Ok(Vec::new());
        }
        let shape = (batch.rows, p.mode.channels(), p.height as usize, p.width as usize);
        let images = Tensor::from_slice(&batch.pixels, shape, &Device::Cpu)?;
        let logits = self.network.forward(&images)?;
        let scores = match self.spec.task {
            ImageTask::MultiClass => candle_nn::ops::softmax(&logits, D::Minus1)?,
            ImageTask::MultiLabel { .. } => candle_nn::ops::sigmoid(&logits)?,
        };
        Ok(scores.flatten_all()?.to_vec1::<f32>()?)
    }

    fn outputs(&self, batch: &ImageBatch, scores: &[f32]) -> Result<DataFrame> {
        let labels = &self.spec.labels;
        let width = labels.len();
        let failed: Vec<Option<&str>> = {
            let mut failed = vec![None; batch.rows];
            for (row, reason) in &batch.failures {
                failed[*row] = Some(reason.as_str());
            }
            failed
        };
        let mut prediction = Vec::with_capacity(batch.rows);
        let mut index = Vec::with_capacity(batch.rows);
        let mut above = Vec::with_capacity(batch.rows);
        for (row, failure) in failed.iter().enumerate() {
            if failure.is_some() {
                prediction.push(None);
                index.push(None);
                above.push(None);
                continue;
            }
            let row_scores = &scores[row * width..(row + 1) * width];
            let top = row_scores.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i);
            prediction.push(Some(labels[top].as_str()));
            index.push(Some(top as i64));
            if let ImageTask::MultiLabel { threshold } = self.spec.task {
                let chosen: Vec<&str> =
                    labels.iter().zip(row_scores).filter(|(_, s)| **s >= threshold).map(|(l, _)| l.as_str()).collect();
                above.push(Some(Series::new("".into(), chosen)));
            }
        }
        let height = batch.rows;
        let fields: Vec<Column> = labels
            .iter()
            .enumerate()
            .map(|(l, label)| {
                let values: Vec<Option<f64>> =
                    (0..height).map(|row| failed[row].is_none().then(|| f64::from(scores[row * width + l]))).collect();
                Column::new(label.as_str().into(), values)
            })
            .collect();
        let mut columns = vec![
            Column::new("prediction".into(), prediction),
            Column::new("prediction_index".into(), index),
            StructChunked::from_columns("scores".into(), height, &fields)?.into_column(),
        ];
        if let ImageTask::MultiLabel { .. } = self.spec.task {
            // Typed even when no row has a list (an empty batch, every row failed).
            let lists: ListChunked = above.into_iter().collect();
            let lists = lists.with_name("labels".into()).into_column();
            columns.push(lists.cast(&DataType::List(Box::new(DataType::String)))?);
        }
        if self.bad_images == BadImages::Report {
            columns.push(Column::new("error".into(), failed));
        }
        Ok(DataFrame::new(height, columns)?)
    }
}

impl ModelWrapper for ImageClassifier {
    type Features = ImageBatch;

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn preprocess(&self, input: &DataFrame) -> Result<ImageBatch> {
        let name = &self.spec.preprocessing.column;
        let column = input.column(name).map_err(|_| Error::MissingColumns { columns: vec![name.clone()] })?;
        let batch = self.spec.preprocessing.extract(column)?;
        if self.bad_images == BadImages::Fail
            && let Some(error) = batch.first_failure(name)
        {
            return Err(error);
        }
        Ok(batch)
    }

    fn predict_features(&self, batch: &ImageBatch) -> Result<DataFrame> {
        let scores = self.scores(batch)?;
        self.outputs(batch, &scores)
    }
}

/// Loads [`ImageClassifier`] packages.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImageClassifierFlavor;

impl Flavor for ImageClassifierFlavor {
    fn name(&self) -> &str {
        IMAGE_CLASSIFIER
    }

    fn load(&self, package: &Package) -> Result<Arc<dyn Model>> {
        Ok(Arc::new(ImageClassifier::from_package(package)?))
    }
}
