//! Training the convolutional network on labeled images.

use std::collections::BTreeSet;

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder, VarMap};
use polars::prelude::{DataFrame, DataType};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, Normal};

use super::{ConvNet, ImageClassifier, ImagePreprocessing, ImageSpec, ImageTask};
use crate::error::{Error, Result};

/// Hyperparameters of an image classifier; [`check`](Self::check) validates them.
///
/// ```no_run
/// use mlops_core::{ImageClassifierParams, ImagePreprocessing, Model};
/// # let train = polars::prelude::DataFrame::empty();
/// // `train` has a base64 PNG/JPEG `image` column and a text `shape` column.
/// let model = ImageClassifierParams::new("shape", ImagePreprocessing::rgb("image", 32, 32))
///     .epochs(8)
///     .check()?
///     .fit_with_progress(&train, |epoch| eprintln!("epoch {}/{}: loss {:.3}", epoch.epoch, epoch.epochs, epoch.loss))?;
/// let predicted = model.predict(&train)?; // prediction, prediction_index, scores
/// # Ok::<(), mlops_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ImageClassifierParams {
    label: String,
    spec: ImageSpec,
    epochs: usize,
    batch_size: usize,
    learning_rate: f64,
    seed: u64,
}

/// [`ImageClassifierParams`] that passed [`check`](ImageClassifierParams::check).
#[derive(Debug, Clone, PartialEq)]
pub struct ValidImageClassifierParams(ImageClassifierParams);

/// Where training is after an epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochReport {
    /// The epoch just finished, from 1.
    pub epoch: usize,
    /// Epochs in all.
    pub epochs: usize,
    /// Mean training loss over the epoch's batches.
    pub loss: f32,
}

impl ImageClassifierParams {
    /// A multi-class classifier of the `label` column (text), on images read by
    /// `preprocessing`, with the default [`ConvNet`]; labels are the distinct values in the
    /// training frame, sorted, unless [`labels`](Self::labels) fixes them. 10 epochs of
    /// batches of 32 with AdamW at a learning rate of 0.003, seed 0.
    pub fn new(label: impl Into<String>, preprocessing: ImagePreprocessing) -> Self {
        Self {
            label: label.into(),
            spec: ImageSpec {
                preprocessing,
                network: ConvNet::default(),
                labels: Vec::new(),
                task: ImageTask::MultiClass,
            },
            epochs: 10,
            batch_size: 32,
            learning_rate: 3e-3,
            seed: 0,
        }
    }

    /// Fixes the labels and their order.
    pub fn labels<I: IntoIterator<Item = S>, S: Into<String>>(mut self, labels: I) -> Self {
        self.spec.labels = labels.into_iter().map(Into::into).collect();
        self
    }

    /// Trains a multi-label model: the label column holds lists of labels, and labels
    /// scoring at or above `threshold` are predicted.
    pub fn multi_label(mut self, threshold: f32) -> Self {
        self.spec.task = ImageTask::MultiLabel { threshold };
        self
    }

    /// The network layout.
    pub fn network(mut self, network: ConvNet) -> Self {
        self.spec.network = network;
        self
    }

    /// Passes over the training images.
    pub fn epochs(mut self, epochs: usize) -> Self {
        self.epochs = epochs;
        self
    }

    /// Images per optimizer step.
    pub fn batch_size(mut self, batch_size: usize) -> Self {
        self.batch_size = batch_size;
        self
    }

    /// AdamW's learning rate.
    pub fn learning_rate(mut self, learning_rate: f64) -> Self {
        self.learning_rate = learning_rate;
        self
    }

    /// Seed of the initial weights and the batch order: the same seed and data train the
    /// same weights.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Validates the parameters.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] naming the parameter out of range.
    pub fn check(self) -> Result<ValidImageClassifierParams> {
        self.spec.preprocessing.check()?;
        let p = &self.spec.preprocessing;
        self.spec.network.check(p.height, p.width)?;
        if self.epochs == 0 || self.batch_size == 0 {
            return Err(Error::InvalidArgument(format!(
                "epochs and batch_size must be at least 1, got {} and {}",
                self.epochs, self.batch_size
            )));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return Err(Error::InvalidArgument(format!("learning_rate must be positive, got {}", self.learning_rate)));
        }
        if self.label == p.column {
            return Err(Error::InvalidArgument(format!(
                "column `{}` cannot be both the image and the label",
                self.label
            )));
        }
        Ok(ValidImageClassifierParams(self))
    }
}

/// Training targets: a label index per image, or a 0/1 row per image.
enum Targets {
    Classes(Vec<u32>),
    MultiHot(Vec<f32>),
}

impl ValidImageClassifierParams {
    /// Trains on `train` (the image column and the label column).
    ///
    /// # Errors
    /// As [`fit_with_progress`](Self::fit_with_progress).
    pub fn fit(&self, train: &DataFrame) -> Result<ImageClassifier> {
        self.fit_with_progress(train, |_| {})
    }

    /// Trains on `train`, reporting after every epoch.
    ///
    /// # Errors
    /// [`Error::MissingColumns`] / [`Error::Schema`] for absent columns, a label outside
    /// the fixed labels or an unreadable image (naming the row); [`Error::Tensor`] if
    /// candle fails.
    pub fn fit_with_progress(
        &self,
        train: &DataFrame,
        mut progress: impl FnMut(&EpochReport),
    ) -> Result<ImageClassifier> {
        let params = &self.0;
        if train.height() == 0 {
            return Err(Error::InvalidArgument("no training images".into()));
        }
        let mut spec = params.spec.clone();
        let targets = read_targets(train, &params.label, &mut spec)?;
        spec.check()?;
        let p: &ImagePreprocessing = &spec.preprocessing;
        let column = train.column(&p.column).map_err(|_| Error::MissingColumns { columns: vec![p.column.clone()] })?;
        let batch = p.extract(column)?;
        if let Some(error) = batch.first_failure(&p.column) {
            return Err(error);
        }
        let rows = batch.rows;
        let device = Device::Cpu;
        let images =
            Tensor::from_vec(batch.pixels, (rows, p.mode.channels(), p.height as usize, p.width as usize), &device)?;
        let targets = match targets {
            Targets::Classes(classes) => Tensor::from_vec(classes, rows, &device)?,
            Targets::MultiHot(hot) => Tensor::from_vec(hot, (rows, spec.labels.len()), &device)?,
        };

        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
        let network = spec.network.build(&vb, p.mode.channels(), p.height, p.width, spec.labels.len())?;
        let mut rng = StdRng::seed_from_u64(params.seed);
        seeded_init(&varmap, &mut rng)?;
        let adam = ParamsAdamW { lr: params.learning_rate, weight_decay: 0.0, ..ParamsAdamW::default() };
        let mut optimizer = AdamW::new(varmap.all_vars(), adam)?;
        let mut order: Vec<u32> = (0..rows as u32).collect();
        for epoch in 1..=params.epochs {
            order.shuffle(&mut rng);
            let (mut total, mut batches) = (0f32, 0usize);
            for chunk in order.chunks(params.batch_size) {
                let picked = Tensor::from_slice(chunk, chunk.len(), &device)?;
                let logits = network.forward(&images.index_select(&picked, 0)?)?;
                let wanted = targets.index_select(&picked, 0)?;
                let loss = match spec.task {
                    ImageTask::MultiClass => candle_nn::loss::cross_entropy(&logits, &wanted)?,
                    ImageTask::MultiLabel { .. } => binary_cross_entropy_with_logits(&logits, &wanted)?,
                };
                optimizer.backward_step(&loss)?;
                total += loss.to_scalar::<f32>()?;
                batches += 1;
            }
            let loss = total / batches as f32;
            if !loss.is_finite() {
                return Err(Error::Fit {
                    model: "image classifier".into(),
                    reason: format!("the loss diverged in epoch {epoch}; try a lower learning rate"),
                });
            }
            progress(&EpochReport { epoch, epochs: params.epochs, loss });
        }
        let weights = {
            let data = varmap.data().lock().map_err(|_| Error::Tensor("the variables' lock is poisoned".into()))?;
            let tensors: Vec<(String, Tensor)> =
                data.iter().map(|(name, var)| (name.clone(), var.as_tensor().clone())).collect();
            safetensors::tensor::serialize(tensors, None).map_err(|e| Error::Tensor(e.to_string()))?
        };
        // The trained weights load through the same path as weights trained elsewhere.
        ImageClassifier::from_safetensors(spec, weights)
    }
}

/// Mean binary cross-entropy of sigmoid(`logits`) against 0/1 `targets`, in the stable
/// form `max(z, 0) − z·t + ln(1 + e^−|z|)`: candle's version takes the logarithm of the
/// sigmoid, which is −∞ (and its gradient NaN) once the model is confident.
fn binary_cross_entropy_with_logits(logits: &Tensor, targets: &Tensor) -> candle_core::Result<Tensor> {
    let softplus = logits.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?;
    (logits.relu()? - (logits * targets)?)?.add(&softplus)?.mean_all()
}

/// Kaiming-normal weights and zero biases from `rng`, in name order, so training is
/// reproducible (candle's own initializer is not seeded).
fn seeded_init(varmap: &VarMap, rng: &mut StdRng) -> Result<()> {
    let data = varmap.data().lock().map_err(|_| Error::Tensor("the variables' lock is poisoned".into()))?;
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let dims = var.dims().to_vec();
        let count: usize = dims.iter().product();
        let values: Vec<f32> = if name.ends_with(".bias") {
            vec![0.0; count]
        } else {
            let fan_in = count / dims.first().copied().unwrap_or(1).max(1);
            let normal = Normal::new(0.0, (2.0 / fan_in.max(1) as f64).sqrt())
                .map_err(|e| Error::Tensor(format!("initializing `{name}`: {e}")))?;
            (0..count).map(|_| normal.sample(rng) as f32).collect()
        };
        var.set(&Tensor::from_vec(values, dims, &Device::Cpu)?)?;
    }
    Ok(())
}

fn read_targets(train: &DataFrame, label: &str, spec: &mut ImageSpec) -> Result<Targets> {
    let column = train.column(label).map_err(|_| Error::MissingColumns { columns: vec![label.to_owned()] })?;
    let schema =
        |expected: &str, found: String| Error::Schema { column: label.to_owned(), expected: expected.into(), found };
    match spec.task {
        ImageTask::MultiClass => {
            if column.dtype() != &DataType::String {
                return Err(schema("text labels", column.dtype().to_string()));
            }
            let values: Vec<Option<&str>> = column.str()?.iter().collect();
            if spec.labels.is_empty() {
                let distinct: BTreeSet<&str> = values.iter().flatten().copied().collect();
                spec.labels = distinct.into_iter().map(str::to_owned).collect();
            }
            values
                .iter()
                .enumerate()
                .map(|(row, value)| {
                    let value = value.ok_or_else(|| schema("a label in every row", format!("null in row {row}")))?;
                    spec.labels
                        .iter()
                        .position(|l| l == value)
                        .map(|i| i as u32)
                        .ok_or_else(|| schema(&format!("one of {:?}", spec.labels), format!("`{value}` in row {row}")))
                })
                .collect::<Result<Vec<_>>>()
                .map(Targets::Classes)
        }
        ImageTask::MultiLabel { .. } => {
            let DataType::List(inner) = column.dtype() else {
                return Err(schema("lists of text labels", column.dtype().to_string()));
            };
            if inner.as_ref() != &DataType::String {
                return Err(schema("lists of text labels", column.dtype().to_string()));
            }
            let list = column.list()?;
            let lists: Vec<Vec<String>> = (0..list.len())
                .map(|row| match list.get_as_series(row) {
                    Some(labels) => Ok(labels.str()?.iter().flatten().map(str::to_owned).collect()),
                    None => Ok(Vec::new()),
                })
                .collect::<Result<_>>()?;
            if spec.labels.is_empty() {
                let distinct: BTreeSet<&String> = lists.iter().flatten().collect();
                spec.labels = distinct.into_iter().cloned().collect();
            }
            let width = spec.labels.len();
            let mut hot = vec![0f32; lists.len() * width];
            for (row, list) in lists.iter().enumerate() {
                for value in list {
                    let i = spec.labels.iter().position(|l| l == value).ok_or_else(|| {
                        schema(&format!("labels among {:?}", spec.labels), format!("`{value}` in row {row}"))
                    })?;
                    hot[row * width + i] = 1.0;
                }
            }
            Ok(Targets::MultiHot(hot))
        }
    }
}
