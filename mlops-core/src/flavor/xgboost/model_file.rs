//! XGBoost's model file (`Booster.save_model`), JSON or UBJSON, read into an ensemble.

use serde::Deserialize;

use super::ubjson;
use crate::error::{Error, Result};
use crate::trees::boosted::{Ensemble, MAX_GROUPS, Test, TreeNode, TreeSpec};

#[derive(Debug, Deserialize)]
struct ModelFile {
    learner: Learner,
    #[serde(default)]
    version: Vec<u32>,
}

#[derive(Debug, Deserialize)]
struct Learner {
    #[serde(default)]
    attributes: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    feature_names: Vec<String>,
    gradient_booster: GradientBooster,
    learner_model_param: LearnerModelParam,
    objective: ObjectiveConfig,
}

#[derive(Debug, Deserialize)]
struct GradientBooster {
    name: String,
    model: Option<GbTreeModel>,
}

#[derive(Debug, Deserialize)]
struct GbTreeModel {
    trees: Vec<Tree>,
    tree_info: Vec<i64>,
    #[serde(default)]
    iteration_indptr: Vec<i64>,
    gbtree_model_param: GbTreeModelParam,
}

#[derive(Debug, Deserialize)]
struct GbTreeModelParam {
    #[serde(default)]
    num_parallel_tree: Option<String>,
}

#[derive(Debug, Deserialize)]
struct LearnerModelParam {
    base_score: String,
    #[serde(default)]
    num_class: Option<String>,
    num_feature: String,
    #[serde(default)]
    num_target: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ObjectiveConfig {
    name: String,
}

#[derive(Debug, Deserialize)]
struct Tree {
    left_children: Vec<i64>,
    right_children: Vec<i64>,
    split_indices: Vec<i64>,
    split_conditions: Vec<f32>,
    default_left: Vec<u8>,
    #[serde(default)]
    split_type: Vec<u8>,
    tree_param: TreeParam,
}

#[derive(Debug, Deserialize)]
struct TreeParam {
    #[serde(default)]
    size_leaf_vector: Option<String>,
}

/// What an XGBoost objective does to margins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Objective {
    /// Margins as they are (`reg:squarederror`, `binary:logitraw`, ...).
    Identity,
    /// `binary:logistic`, `reg:logistic`: the logistic function.
    Logistic,
    /// `count:poisson`, `reg:gamma`, `reg:tweedie`: the exponential.
    Exp,
    /// `multi:softprob`: per-class probabilities.
    Softprob,
    /// `multi:softmax`: the class with the largest margin.
    Softmax,
}

/// How `base_score` (as the file stores it) becomes the starting margin.
fn base_margin(objective: Objective, name: &str, base: f32) -> Result<f32> {
    let margin = match objective {
        // binary:logitraw keeps its base score as a margin.
        Objective::Logistic => -(1.0f32 / base - 1.0).ln(),
        Objective::Exp => base.ln(),
        Objective::Identity | Objective::Softprob | Objective::Softmax => base,
    };
    if margin.is_finite() {
        Ok(margin)
    } else {
        Err(Error::InvalidPackage(format!("XGBoost model: base_score {base} is out of range for objective `{name}`")))
    }
}

fn objective(name: &str) -> Result<Objective> {
    Ok(match name {
        "reg:squarederror"
        | "reg:linear"
        | "reg:squaredlogerror"
        | "reg:pseudohubererror"
        | "reg:absoluteerror"
        | "reg:quantileerror"
        | "binary:logitraw"
        | "rank:pairwise"
        | "rank:ndcg"
        | "rank:map" => Objective::Identity,
        "binary:logistic" | "reg:logistic" => Objective::Logistic,
        "count:poisson" | "reg:gamma" | "reg:tweedie" => Objective::Exp,
        "multi:softprob" => Objective::Softprob,
        "multi:softmax" => Objective::Softmax,
        other => {
            return Err(Error::InvalidPackage(format!(
                "XGBoost model: objective `{other}` is not supported here (supported: reg:squarederror, reg:logistic, binary:logistic, binary:logitraw, count:poisson, reg:gamma, reg:tweedie, multi:softprob, multi:softmax and the other identity objectives)"
            )));
        }
    })
}

/// A model file, read.
#[derive(Debug, Clone)]
pub(crate) struct Booster {
    pub(crate) ensemble: Ensemble<f32>,
    pub(crate) objective: Objective,
    /// The starting margin of each output group.
    pub(crate) base_margins: Vec<f32>,
    pub(crate) feature_names: Option<Vec<String>>,
    /// The features each row has.
    pub(crate) features: usize,
    /// `best_iteration` from the file's attributes (early stopping), when recorded.
    pub(crate) best_iteration: Option<usize>,
    /// Trees per boosting iteration (classes times parallel trees).
    pub(crate) trees_per_iteration: usize,
    pub(crate) version: Vec<u32>,
}

fn number(field: &str, text: &str) -> Result<usize> {
    text.trim()
        .parse::<usize>()
        .map_err(|_| Error::InvalidPackage(format!("XGBoost model: `{field}` is `{text}`, not a count")))
}

/// `base_score` as XGBoost writes it: `5E-1`, or a vector `[5E-1,1E0]` since 3.1.
fn base_scores(text: &str) -> Result<Vec<f32>> {
    let inner = text.trim().trim_start_matches('[').trim_end_matches(']');
    inner
        .split(',')
        .map(|v| {
            v.trim().parse::<f32>().map_err(|_| Error::InvalidPackage(format!("XGBoost model: base_score `{text}`")))
        })
        .collect()
}

/// Whether `bytes` are UBJSON rather than JSON: both open an object, and JSON follows
/// with a quote or white space where UBJSON has a length marker.
fn is_ubjson(bytes: &[u8]) -> bool {
    bytes.first() == Some(&b'{')
        && bytes.get(1).is_some_and(|b| !matches!(b, b'"' | b' ' | b'\n' | b'\r' | b'\t' | b'}'))
}

impl Booster {
    /// Reads a model file, JSON or UBJSON (told apart by content).
    ///
    /// # Errors
    /// [`Error::InvalidPackage`] naming `file` for a document that is neither, the old
    /// binary format, a booster other than `gbtree`, an unknown objective, vector leaves,
    /// categorical splits (naming the feature) or malformed trees.
    pub(crate) fn from_bytes(bytes: &[u8], file: &str) -> Result<Self> {
        let invalid = |why: String| Error::InvalidPackage(format!("XGBoost model `{file}`: {why}"));
        let parsed: ModelFile = if is_ubjson(bytes) {
            ubjson::from_slice(bytes).map_err(|e| invalid(format!("not a readable UBJSON model: {e}")))?
        } else if bytes.trim_ascii_start().first() == Some(&b'{') {
            serde_json::from_slice(bytes).map_err(|e| invalid(format!("not a readable JSON model: {e}")))?
        } else {
            return Err(invalid(
                "neither JSON nor UBJSON: a model in XGBoost's old binary format must be loaded in Python and saved again with `save_model(\"model.ubj\")`".into(),
            ));
        };
        Self::from_parsed(parsed).map_err(|e| match e {
            Error::InvalidPackage(why) => invalid(why.trim_start_matches("XGBoost model: ").to_owned()),
            other => other,
        })
    }

    fn from_parsed(file: ModelFile) -> Result<Self> {
        let learner = file.learner;
        let booster = &learner.gradient_booster;
        if booster.name != "gbtree" {
            return Err(Error::InvalidPackage(format!(
                "XGBoost model: booster `{}` is not supported here (only gbtree; dart and gblinear are not)",
                booster.name
            )));
        }
        let model = booster
            .model
            .as_ref()
            .ok_or_else(|| Error::InvalidPackage("XGBoost model: the gbtree booster has no model".into()))?;
        let objective_name = learner.objective.name.as_str();
        let objective = objective(objective_name)?;
        let params = &learner.learner_model_param;
        let features = number("num_feature", &params.num_feature)?;
        let classes = params.num_class.as_deref().map(|c| number("num_class", c)).transpose()?.unwrap_or(0);
        let targets = params.num_target.as_deref().map(|t| number("num_target", t)).transpose()?.unwrap_or(1);
        if targets > 1 {
            return Err(Error::InvalidPackage(format!(
                "XGBoost model: {targets} targets (multi-output regression) are not supported here"
            )));
        }
        let groups = classes.max(1);
        if groups > MAX_GROUPS {
            return Err(Error::InvalidPackage(format!(
                "XGBoost model: num_class {classes} is more than this crate scores ({MAX_GROUPS})"
            )));
        }
        if matches!(objective, Objective::Softprob | Objective::Softmax) && classes < 2 {
            return Err(Error::InvalidPackage(format!(
                "XGBoost model: objective `{objective_name}` with num_class {classes}"
            )));
        }
        let scores = base_scores(&params.base_score)?;
        let base_margins = match scores.as_slice() {
            [one] => vec![base_margin(objective, objective_name, *one)?; groups],
            many if many.len() == groups => {
                many.iter().map(|b| base_margin(objective, objective_name, *b)).collect::<Result<_>>()?
            }
            many => {
                return Err(Error::InvalidPackage(format!(
                    "XGBoost model: {} base scores for {groups} outputs",
                    many.len()
                )));
            }
        };
        if model.tree_info.len() != model.trees.len() {
            return Err(Error::InvalidPackage(format!(
                "XGBoost model: {} trees but {} tree_info entries",
                model.trees.len(),
                model.tree_info.len()
            )));
        }
        let names = (!learner.feature_names.is_empty()).then(|| learner.feature_names.clone());
        if names.as_ref().is_some_and(|n| n.len() != features) {
            return Err(Error::InvalidPackage(format!(
                "XGBoost model: {} feature names for {features} features",
                learner.feature_names.len()
            )));
        }
        let feature_name =
            |index: usize| names.as_ref().and_then(|n| n.get(index)).map_or_else(|| format!("f{index}"), Clone::clone);
        let mut specs = Vec::with_capacity(model.trees.len());
        for (index, (tree, group)) in model.trees.iter().zip(&model.tree_info).enumerate() {
            let group = usize::try_from(*group).ok().filter(|&g| g < groups).ok_or_else(|| {
                Error::InvalidPackage(format!("XGBoost model: tree {index} is for output {group} of {groups}"))
            })?;
            specs.push(TreeSpec { nodes: tree_nodes(index, tree, &feature_name)?, group });
        }
        let ensemble = Ensemble::new(specs, features, groups).map_err(|e| match e {
            Error::InvalidPackage(why) => Error::InvalidPackage(format!("XGBoost model: {why}")),
            other => other,
        })?;
        let parallel = model
            .gbtree_model_param
            .num_parallel_tree
            .as_deref()
            .map(|p| number("num_parallel_tree", p))
            .transpose()?
            .unwrap_or(1);
        let trees_per_iteration = match model.iteration_indptr.as_slice() {
            [0, next, ..] if *next > 0 => *next as usize,
            _ => groups.saturating_mul(parallel.max(1)),
        };
        let best_iteration = learner.attributes.get("best_iteration").and_then(|b| b.trim().parse().ok());
        Ok(Self {
            ensemble,
            objective,
            base_margins,
            feature_names: names,
            features,
            best_iteration,
            trees_per_iteration,
            version: file.version,
        })
    }
}

/// One tree's nodes: XGBoost sends `x < split_condition` left, a missing value to its
/// default side, and keeps a leaf's value in `split_conditions`.
fn tree_nodes(index: usize, tree: &Tree, feature_name: &dyn Fn(usize) -> String) -> Result<Vec<TreeNode<f32>>> {
    let bad = |why: String| Error::InvalidPackage(format!("XGBoost model: tree {index}: {why}"));
    if let Some(size) = tree.tree_param.size_leaf_vector.as_deref()
        && !matches!(size.trim(), "0" | "1")
    {
        return Err(bad(format!("leaves of {size} values (multi-output trees) are not supported here")));
    }
    let n = tree.left_children.len();
    let lengths =
        [tree.right_children.len(), tree.split_indices.len(), tree.split_conditions.len(), tree.default_left.len()];
    if n == 0 || lengths.iter().any(|&l| l != n) || !(tree.split_type.is_empty() || tree.split_type.len() == n) {
        return Err(bad(format!("node arrays of different lengths ({n}, {lengths:?})")));
    }
    let mut nodes = Vec::with_capacity(n);
    for node in 0..n {
        let (left, right) = (tree.left_children[node], tree.right_children[node]);
        if left == -1 {
            nodes.push(TreeNode::Leaf(tree.split_conditions[node]));
            continue;
        }
        let feature = usize::try_from(tree.split_indices[node])
            .map_err(|_| bad(format!("node {node} splits on feature {}", tree.split_indices[node])))?;
        if tree.split_type.get(node).is_some_and(|&t| t != 0) {
            return Err(Error::InvalidPackage(format!(
                "XGBoost model: tree {index} splits feature `{}` by category, which is not supported here: train with `enable_categorical=False` (one-hot or ordinal codes) to score it in Rust",
                feature_name(feature)
            )));
        }
        let child = |c: i64| usize::try_from(c).map_err(|_| bad(format!("node {node} has child {c}")));
        nodes.push(TreeNode::Branch {
            feature,
            test: Test::Less { threshold: tree.split_conditions[node], missing_left: tree.default_left[node] != 0 },
            left: child(left)?,
            right: child(right)?,
        });
    }
    Ok(nodes)
}
