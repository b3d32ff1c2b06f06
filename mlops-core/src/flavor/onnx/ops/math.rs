//! The float arithmetic of onnxruntime's ai.onnx.ml kernels, reproduced operation for
//! operation: these models are trained against onnxruntime's outputs, and a different but
//! "more exact" formula would change small probabilities by far more than 1e-5 relative.

/// How scores become outputs (`post_transform`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum PostTransform {
    None,
    Logistic,
    Softmax,
    SoftmaxZero,
    Probit,
}

impl PostTransform {
    pub(crate) fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "NONE" => Self::None,
            "LOGISTIC" => Self::Logistic,
            "SOFTMAX" => Self::Softmax,
            "SOFTMAX_ZERO" => Self::SoftmaxZero,
            "PROBIT" => Self::Probit,
            _ => return None,
        })
    }

    /// Applies the transform to one row of scores, as onnxruntime's `write_scores` does for
    /// rows of two or more values.
    pub(crate) fn apply(self, scores: &mut [f32]) {
        match self {
            Self::None => {}
            Self::Logistic => scores.iter_mut().for_each(|s| *s = compute_logistic(*s)),
            Self::Softmax => softmax(scores),
            Self::SoftmaxZero => softmax_zero(scores),
            Self::Probit => scores.iter_mut().for_each(|s| *s = compute_probit(*s)),
        }
    }
}

/// onnxruntime's `ComputeLogistic`: `1 / (1 + e^-|x|)`, mirrored for negative `x` (so
/// small probabilities are `1 - v`, quantized as onnxruntime quantizes them).
pub(crate) fn compute_logistic(x: f32) -> f32 {
    let v = 1.0 / (1.0 + (-x.abs()).exp());
    if x < 0.0 { 1.0 - v } else { v }
}

/// onnxruntime's `ComputeProbit`: `sqrt(2) * erfinv(2x - 1)` with its erfinv approximation.
pub(crate) fn compute_probit(x: f32) -> f32 {
    std::f32::consts::SQRT_2 * erf_inv(2.0 * x - 1.0)
}

fn erf_inv(x: f32) -> f32 {
    let sign = if x < 0.0 { -1.0 } else { 1.0 };
    let x = (1.0 - x) * (1.0 + x);
    let log = x.ln();
    let v = 2.0 / (std::f32::consts::PI * 0.147) + 0.5 * log;
    let v2 = 1.0 / 0.147 * log;
    let v3 = -v + (v * v - v2).sqrt();
    sign * v3.sqrt()
}

/// onnxruntime's `ComputeSoftmax`: the maximum subtracted, `exp` in f32, summed in order.
pub(crate) fn softmax(values: &mut [f32]) {
    let max = values.iter().copied().fold(-f32::MAX, |m, v| if v > m { v } else { m });
    let mut sum = 0.0f32;
    for v in values.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    values.iter_mut().for_each(|v| *v /= sum);
}

/// onnxruntime's `ComputeSoftmaxZero`: values within 1e-7 of zero stay (scaled) zeros and
/// take no part in the sum.
pub(crate) fn softmax_zero(values: &mut [f32]) {
    let max = values.iter().copied().fold(-f32::MAX, |m, v| if v > m { v } else { m });
    let scale = (-max).exp();
    let mut sum = 0.0f32;
    for v in values.iter_mut() {
        if *v > 0.000_000_1 || *v < -0.000_000_1 {
            *v = (*v - max).exp();
            sum += *v;
        } else {
            *v *= scale;
        }
    }
    values.iter_mut().for_each(|v| *v /= sum);
}

/// `a * w + acc` rounded once to float32, as a fused multiply-add gives it, without the
/// software `fmaf` a build for baseline x86-64 calls: the product of two float32 values
/// is exact in float64, so only the final sum is rounded (twice, to float64 and then to
/// float32, which differs from one rounding in rare halfway cases by one unit in the last
/// place).
#[inline]
pub(crate) fn fused(a: f32, w: f32, acc: f32) -> f32 {
    (f64::from(a) * f64::from(w) + f64::from(acc)) as f32
}

/// The logistic function as onnxruntime's MLAS library computes it (and with it the
/// `Sigmoid` operator and linear classifiers): a rational approximation in f32 with fused
/// multiply-adds, clamped to [-18, 18].
// The constants keep MLAS's digits; each literal rounds to the same f32 as there.
#[allow(clippy::excessive_precision)]
pub(crate) fn mlas_logistic(x: f32) -> f32 {
    const A9: f32 = 4.370_310_125_798_01e-11;
    const A7: f32 = 1.156_273_244_599_42e-7;
    const A5: f32 = 6.085_748_646_001_43e-5;
    const A3: f32 = 8.513_771_333_047_01e-3;
    const A1: f32 = 2.482_879_470_615_29e-1;
    const B10: f32 = 6.102_473_897_556_81e-13;
    const B8: f32 = 5.761_021_369_934_27e-9;
    const B6: f32 = 6.291_067_850_170_40e-6;
    const B4: f32 = 1.701_988_173_740_94e-3;
    const B2: f32 = 1.168_176_569_044_53e-1;
    const B0: f32 = 9.931_519_210_231_80e-1;
    if x.is_nan() {
        return x;
    }
    let x = x.clamp(-18.0, 18.0);
    let x2 = x * x;
    let p = fused(fused(fused(fused(x2, A9, A7), x2, A5), x2, A3), x2, A1) * x;
    let q = fused(fused(fused(fused(fused(x2, B10, B8), x2, B6), x2, B4), x2, B2), x2, B0);
    (p / q + 0.5).clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logistic_is_onnxruntimes_not_the_exact_one() {
        // 1 - 1/(1+e^-10) in f32, not e^-10/(1+e^-10) = 4.5397868e-5.
        assert_eq!(compute_logistic(-10.0), 4.541_874e-5);
        assert_eq!(compute_logistic(0.0), 0.5);
        assert!((compute_logistic(2.0) - 0.880_797_1).abs() < 1e-7);
        assert_eq!(compute_logistic(-20.0), 0.0);
    }

    #[test]
    fn mlas_logistic_stays_in_range_and_is_close_to_the_sigmoid() {
        for i in -400..=400 {
            let x = i as f32 * 0.05;
            let exact = 1.0 / (1.0 + (-f64::from(x)).exp());
            let approx = f64::from(mlas_logistic(x));
            assert!((0.0..=1.0).contains(&approx));
            assert!((approx - exact).abs() < 2e-7, "x = {x}: {approx} vs {exact}");
        }
        assert_eq!(mlas_logistic(0.0), 0.5);
        assert_eq!(mlas_logistic(-30.0), 0.0);
        assert_eq!(mlas_logistic(30.0), 1.0);
        assert!(mlas_logistic(f32::NAN).is_nan());
    }

    #[test]
    fn softmax_sums_to_one_and_zero_variant_skips_zeros() {
        let mut v = [1.0f32, 2.0, 3.0];
        softmax(&mut v);
        assert!((v.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(v[2] > v[1] && v[1] > v[0]);
        let mut z = [0.0f32, 2.0, 2.0];
        softmax_zero(&mut z);
        assert_eq!(z[0], 0.0);
        assert!((z[1] - 0.5).abs() < 1e-7);
    }
}
