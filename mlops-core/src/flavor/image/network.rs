//! The convolutional network, defined with candle: its layout is data, its weights a
//! safetensors file.

use candle_core::{DType, Device, Tensor};
use candle_nn::{Conv2d, Conv2dConfig, Linear, Module, VarBuilder};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The most convolution steps: each halves both sides, and 2^16 pixels is more than any side
/// the flavor takes.
const MAX_POOLING_STEPS: usize = 16;

/// A small convolutional network: for each entry of `channels`, a `kernel` × `kernel`
/// convolution (same padding) named `conv<i>` (from 1), ReLU and 2 × 2 max pooling; then
/// one linear layer `fc` from the flattened features to one logit per label.
///
/// Weights trained elsewhere load when their safetensors file has these names and shapes:
/// `conv<i>.weight` `(out, in, k, k)`, `conv<i>.bias` `(out)`, `fc.weight`
/// `(labels, features)`, `fc.bias` `(labels)`, as PyTorch's `Conv2d` and `Linear` store them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvNet {
    /// Output channels of each convolution block.
    pub channels: Vec<usize>,
    /// Convolution kernel size (odd).
    pub kernel: usize,
}

impl Default for ConvNet {
    /// Two blocks of 8 and 16 channels, 3 × 3 kernels.
    fn default() -> Self {
        Self { channels: vec![8, 16], kernel: 3 }
    }
}

impl ConvNet {
    pub(crate) fn check(&self, height: u32, width: u32) -> Result<()> {
        if self.channels.is_empty() || self.channels.contains(&0) {
            return Err(Error::InvalidArgument(format!(
                "convolution channels must be positive, got {:?}",
                self.channels
            )));
        }
        if self.kernel.is_multiple_of(2) {
            return Err(Error::InvalidArgument(format!("the kernel size must be odd, got {}", self.kernel)));
        }
        // Each step halves the image: more steps than a side has bits leave nothing.
        if self.channels.len() > MAX_POOLING_STEPS {
            return Err(Error::InvalidArgument(format!(
                "{} convolution steps are more than the {MAX_POOLING_STEPS} an image can be pooled by",
                self.channels.len()
            )));
        }
        let shrink = 1u32 << self.channels.len();
        if !height.is_multiple_of(shrink) || !width.is_multiple_of(shrink) {
            return Err(Error::InvalidArgument(format!(
                "{} pooling steps need a size divisible by {shrink}, got {height}x{width}",
                self.channels.len()
            )));
        }
        Ok(())
    }

    /// Builds the layers from `vb` (fresh variables in training, a safetensors file when
    /// loading).
    pub(crate) fn build(
        &self,
        vb: &VarBuilder<'_>,
        input_channels: usize,
        height: u32,
        width: u32,
        labels: usize,
    ) -> Result<Network> {
        let config = Conv2dConfig { padding: self.kernel / 2, ..Conv2dConfig::default() };
        let mut convs = Vec::with_capacity(self.channels.len());
        let mut previous = input_channels;
        for (i, channels) in self.channels.iter().enumerate() {
            convs.push(candle_nn::conv2d(previous, *channels, self.kernel, config, vb.pp(format!("conv{}", i + 1)))?);
            previous = *channels;
        }
        let shrink = 1usize << self.channels.len();
        let features = previous * (height as usize / shrink) * (width as usize / shrink);
        let fc = candle_nn::linear(features, labels, vb.pp("fc"))?;
        Ok(Network { convs, fc })
    }
}

/// The layers of a [`ConvNet`].
#[derive(Debug, Clone)]
pub(crate) struct Network {
    convs: Vec<Conv2d>,
    fc: Linear,
}

impl Network {
    /// Logits `(N, labels)` of a `(N, C, H, W)` batch.
    pub(crate) fn forward(&self, images: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = images.clone();
        for conv in &self.convs {
            x = conv.forward(&x)?.relu()?.max_pool2d(2)?;
        }
        self.fc.forward(&x.flatten_from(1)?)
    }
}

/// Builds the network on weights read from safetensors bytes.
pub(crate) fn load(
    net: &ConvNet,
    weights: &[u8],
    input_channels: usize,
    height: u32,
    width: u32,
    labels: usize,
) -> Result<Network> {
    let vb = VarBuilder::from_buffered_safetensors(weights.to_vec(), DType::F32, &Device::Cpu)?;
    net.build(&vb, input_channels, height, width, labels)
}
