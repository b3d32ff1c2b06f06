//! Flavors: how a package of a given kind turns back into a [`Model`].

#[cfg(any(feature = "xgboost", feature = "lightgbm"))]
mod boosted;
#[cfg(feature = "forecast")]
mod forecast;
#[cfg(feature = "image")]
mod image;
#[cfg(feature = "lightgbm")]
mod lightgbm;
#[cfg(feature = "onnx")]
mod onnx;
#[cfg(feature = "tabular")]
mod tabular;
#[cfg(feature = "xgboost")]
mod xgboost;

#[cfg(feature = "forecast")]
pub use forecast::{
    FORECASTER, ForecastFlavor, ForecastModel, ForecastParams, ForecastRequests, ForecastSpec, ValidForecastParams,
};
#[cfg(feature = "image")]
pub use image::{
    BadImages, ColorMode, ConvNet, EpochReport, IMAGE_CLASSIFIER, ImageBatch, ImageClassifier, ImageClassifierFlavor,
    ImageClassifierParams, ImagePreprocessing, ImageSpec, ImageTask, ResizeFilter, ValidImageClassifierParams,
};
#[cfg(feature = "lightgbm")]
pub use lightgbm::{LIGHTGBM, LightgbmFlavor, LightgbmModel};
#[cfg(feature = "onnx")]
pub use onnx::{ONNX, OnnxFlavor, OnnxModel};
#[cfg(feature = "tabular")]
pub use tabular::{
    FeatureColumns, LinearWeights, RegressionAlgorithm, TABULAR_CLASSIFIER, TABULAR_REGRESSOR, TabularClassifierParams,
    TabularFlavor, TabularModel, TabularRegressorParams, TabularTask, ValidTabularClassifierParams,
    ValidTabularRegressorParams,
};
#[cfg(feature = "xgboost")]
pub use xgboost::{XGBOOST, XgboostFlavor, XgboostModel, XgboostOutput};

/// Every built-in flavor and the feature of `mlops-core` that builds it in, whether or not
/// this build has it: a package of a flavor left out is refused with the feature to turn on.
pub const BUILTIN_FLAVORS: [(&str, &str); 7] = [
    ("tabular_classifier", "tabular"),
    ("tabular_regressor", "tabular"),
    ("forecaster", "forecast"),
    ("image_classifier", "image"),
    ("onnx", "onnx"),
    ("xgboost", "xgboost"),
    ("lightgbm", "lightgbm"),
];

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::mlflow::unsupported_flavor;
use crate::model::{Model, WithFeatures};
use crate::package::{Package, PackageFormat};

/// Loads packages of one flavor.
///
/// Implementations read only from the [`Package`] (whose checksums are already verified) and
/// must refuse, with a typed error, a package whose files they cannot interpret.
pub trait Flavor: Send + Sync {
    /// The flavor name recorded in manifests.
    fn name(&self) -> &str;

    /// Builds the model a package holds.
    ///
    /// # Errors
    /// [`Error::InvalidPackage`] or [`Error::Json`] for unreadable flavor files.
    fn load(&self, package: &Package) -> Result<Arc<dyn Model>>;
}

/// The flavors a process can load, by name.
///
/// ```
/// use mlops_core::FlavorRegistry;
/// let flavors = FlavorRegistry::with_builtins();
/// assert!(flavors.names().any(|n| n == "tabular_classifier"));
/// ```
#[derive(Clone)]
pub struct FlavorRegistry {
    flavors: BTreeMap<String, Arc<dyn Flavor>>,
}

impl FlavorRegistry {
    /// A registry that knows no flavor.
    pub fn empty() -> Self {
        Self { flavors: BTreeMap::new() }
    }

    /// A registry with the built-in flavors this build has, each behind a feature of
    /// `mlops-core` (all on by default; see [`BUILTIN_FLAVORS`]): `tabular_classifier` and
    /// `tabular_regressor` (`tabular`), `forecaster` (`forecast`), `image_classifier`
    /// (`image`), `onnx`, `xgboost` and `lightgbm`.
    pub fn with_builtins() -> Self {
        #[allow(unused_mut, reason = "a build without flavors registers nothing")]
        let mut registry = Self::empty();
        #[cfg(feature = "onnx")]
        registry.register(Arc::new(OnnxFlavor));
        #[cfg(feature = "forecast")]
        registry.register(Arc::new(ForecastFlavor));
        #[cfg(feature = "image")]
        registry.register(Arc::new(ImageClassifierFlavor));
        #[cfg(feature = "xgboost")]
        registry.register(Arc::new(XgboostFlavor));
        #[cfg(feature = "lightgbm")]
        registry.register(Arc::new(LightgbmFlavor));
        #[cfg(feature = "tabular")]
        registry.register(Arc::new(TabularFlavor::new(TabularTask::Classifier)));
        #[cfg(feature = "tabular")]
        registry.register(Arc::new(TabularFlavor::new(TabularTask::Regressor)));
        registry
    }

    /// Adds `flavor`, replacing any flavor of the same name.
    pub fn register(&mut self, flavor: Arc<dyn Flavor>) -> &mut Self {
        self.flavors.insert(flavor.name().to_owned(), flavor);
        self
    }

    /// Names of the registered flavors.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.flavors.keys().map(String::as_str)
    }

    /// Loads the model of `package` with the flavor its manifest names. A package that
    /// records a [`FeatureSpec`](crate::features::FeatureSpec) gives a model whose
    /// [`Model::features`] returns it.
    ///
    /// An MLflow model directory ([`PackageFormat::Mlflow`]) loads with the loader of its
    /// MLflow flavor (`onnx`, ...).
    ///
    /// # Errors
    /// [`Error::UnknownFlavor`] naming the flavor when none is registered for it (for an
    /// MLflow model, [`Error::UnsupportedMlflowFlavor`], which lists its flavors and names
    /// the export that would run), and the flavor's own load errors.
    pub fn load(&self, package: &Package) -> Result<Arc<dyn Model>> {
        let name = &package.manifest().flavor;
        let known = || self.flavors.keys().cloned().collect::<Vec<_>>();
        let Some(flavor) = self.flavors.get(name) else {
            if let Some(feature) = left_out_feature(name) {
                return Err(Error::FlavorNotBuilt { flavor: name.clone(), feature });
            }
            if package.manifest().format == PackageFormat::Mlflow {
                let flavors =
                    package.mlflow_model()?.map(|m| m.flavor_names().map(str::to_owned).collect()).unwrap_or_default();
                return Err(unsupported_flavor(name, flavors, known()));
            }
            return Err(Error::UnknownFlavor { flavor: name.clone(), known: known() });
        };
        let model = crate::error::catching_panics(&format!("loading a `{name}` model"), || flavor.load(package))?;
        let features = &package.manifest().features;
        if features.is_empty() { Ok(model) } else { Ok(Arc::new(WithFeatures { model, features: features.clone() })) }
    }
}

/// The feature that builds in the built-in flavor `name`, when this build leaves it out.
fn left_out_feature(name: &str) -> Option<&'static str> {
    let (_, feature) = BUILTIN_FLAVORS.iter().find(|(flavor, _)| *flavor == name)?;
    let built = match *feature {
        "tabular" => cfg!(feature = "tabular"),
        "forecast" => cfg!(feature = "forecast"),
        "image" => cfg!(feature = "image"),
        "onnx" => cfg!(feature = "onnx"),
        "xgboost" => cfg!(feature = "xgboost"),
        "lightgbm" => cfg!(feature = "lightgbm"),
        _ => true,
    };
    (!built).then_some(*feature)
}

impl Default for FlavorRegistry {
    fn default() -> Self {
        Self::with_builtins()
    }
}

impl fmt::Debug for FlavorRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.flavors.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_registry_holds_exactly_the_flavors_this_build_has() {
        let builtins = FlavorRegistry::with_builtins();
        let registered: Vec<&str> = builtins.flavors.keys().map(String::as_str).collect();
        for (flavor, feature) in BUILTIN_FLAVORS {
            let built = left_out_feature(flavor).is_none();
            assert_eq!(registered.contains(&flavor), built, "flavor `{flavor}` (feature `{feature}`)");
        }
        assert!(registered.iter().all(|name| BUILTIN_FLAVORS.iter().any(|(flavor, _)| flavor == name)));
    }
}
