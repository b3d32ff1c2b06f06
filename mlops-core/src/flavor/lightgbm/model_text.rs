//! LightGBM's text model (`Booster.save_model`, MLflow's `model.lgb`) read into an
//! ensemble with LightGBM's decision rules.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::trees::boosted::{Ensemble, MAX_GROUPS, Test, TreeNode, TreeSpec};

/// The most features a model may read.
const MAX_FEATURES: usize = 1 << 24;

/// What a LightGBM objective does to raw scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Objective {
    /// Raw scores as they are (regression, ranking).
    Identity,
    /// `regression` with `reg_sqrt`: the signed square.
    SignedSquare,
    /// `binary`, `cross_entropy`: `1 / (1 + exp(-sigmoid * x))`.
    Sigmoid(f64),
    /// `multiclassova`: the logistic function per class.
    SigmoidPerClass(f64),
    /// `multiclass`: per-class probabilities.
    Softmax,
    /// `poisson`, `gamma`, `tweedie`: the exponential.
    Exp,
}

/// The categories of a pandas `category` column the model was trained on, by feature.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PandasCategories {
    /// String categories, coded by position.
    Strings(Vec<String>),
    /// Other categories (numbers), which a frame must give as codes.
    Other,
}

/// A model file, read.
#[derive(Debug, Clone)]
pub(crate) struct Booster {
    pub(crate) ensemble: Ensemble<f64>,
    pub(crate) objective: Objective,
    pub(crate) feature_names: Option<Vec<String>>,
    pub(crate) features: usize,
    /// Per feature, whether its splits are categorical.
    pub(crate) categorical: Vec<bool>,
    /// The categories of each categorical feature trained from a pandas column, in the
    /// order of the categorical features.
    pub(crate) pandas_categories: Vec<PandasCategories>,
    /// Random-forest mode: scores are averaged over iterations instead of summed.
    pub(crate) average_over: Option<usize>,
}

fn invalid(why: impl std::fmt::Display) -> Error {
    Error::InvalidPackage(format!("LightGBM model: {why}"))
}

fn objective(text: &str) -> Result<Objective> {
    let mut parts = text.split_whitespace();
    let name = parts.next().unwrap_or_default();
    let options: BTreeMap<&str, &str> = parts.filter_map(|p| p.split_once(':')).collect();
    let sigmoid = || -> Result<f64> {
        options.get("sigmoid").map_or(Ok(1.0), |s| s.parse().map_err(|_| invalid(format!("objective `{text}`"))))
    };
    Ok(match name {
        "binary" | "cross_entropy" | "xentropy" => Objective::Sigmoid(sigmoid()?),
        "multiclass" | "softmax" => Objective::Softmax,
        "multiclassova" | "multiclass_ova" | "ova" | "ovr" => Objective::SigmoidPerClass(sigmoid()?),
        "poisson" | "gamma" | "tweedie" => Objective::Exp,
        "regression" | "regression_l2" | "l2" | "mean_squared_error" | "mse" | "regression_l1" | "l1" | "huber"
        | "fair" | "quantile" | "mape" | "lambdarank" | "rank_xendcg" | "custom" | "none" => {
            if text.split_whitespace().any(|p| p == "sqrt") { Objective::SignedSquare } else { Objective::Identity }
        }
        _ => {
            return Err(invalid(format!(
                "objective `{text}` is not supported here (supported: binary, cross_entropy, multiclass, multiclassova, poisson, gamma, tweedie, and the regression and ranking objectives)"
            )));
        }
    })
}

/// `key=value` lines of one section.
fn fields(lines: &[&str]) -> BTreeMap<String, String> {
    lines.iter().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect()
}

fn values<T: std::str::FromStr>(
    fields: &BTreeMap<String, String>,
    key: &str,
    tree: usize,
    len: usize,
) -> Result<Vec<T>> {
    let text = fields.get(key).ok_or_else(|| invalid(format!("tree {tree} has no `{key}`")))?;
    let parsed: Vec<T> = text
        .split_whitespace()
        .map(|v| v.parse::<T>().map_err(|_| invalid(format!("tree {tree}: `{key}` holds `{v}`"))))
        .collect::<Result<_>>()?;
    if parsed.len() != len {
        return Err(invalid(format!("tree {tree}: `{key}` has {} values, expected {len}", parsed.len())));
    }
    Ok(parsed)
}

fn count(fields: &BTreeMap<String, String>, key: &str, at: &str) -> Result<usize> {
    let text = fields.get(key).ok_or_else(|| invalid(format!("{at} has no `{key}`")))?;
    text.parse().map_err(|_| invalid(format!("{at}: `{key}` is `{text}`")))
}

impl Booster {
    /// Reads a text model.
    ///
    /// # Errors
    /// [`Error::InvalidPackage`] for text that is not a LightGBM model (or ends early), an
    /// unknown objective (named), linear trees, or malformed trees (naming the tree).
    pub(crate) fn from_text(text: &str) -> Result<Self> {
        let lines: Vec<&str> = text.lines().map(str::trim_end).collect();
        if lines.first().map(|l| l.trim()) != Some("tree") {
            return Err(invalid("the file does not start with `tree`: not a LightGBM text model"));
        }
        let end = lines
            .iter()
            .position(|l| *l == "end of trees")
            .ok_or_else(|| invalid("`end of trees` is missing: the file is truncated"))?;
        let first_tree = lines[..end].iter().position(|l| l.starts_with("Tree=")).unwrap_or(end);
        let header = fields(&lines[..first_tree]);
        let average = lines[..first_tree].iter().any(|l| l.trim() == "average_output");
        let objective = objective(header.get("objective").map_or("regression", String::as_str))?;
        let classes = count(&header, "num_class", "the header")?;
        let per_iteration = count(&header, "num_tree_per_iteration", "the header")?;
        let features = count(&header, "max_feature_idx", "the header")?.saturating_add(1);
        if features > MAX_FEATURES {
            return Err(invalid(format!("{features} features are more than this crate scores ({MAX_FEATURES})")));
        }
        if per_iteration == 0
            || per_iteration > MAX_GROUPS
            || (objective == Objective::Softmax && classes != per_iteration)
        {
            return Err(invalid(format!("{classes} classes with {per_iteration} trees per iteration")));
        }
        let names: Option<Vec<String>> =
            header.get("feature_names").map(|n| n.split_whitespace().map(str::to_owned).collect());
        if names.as_ref().is_some_and(|n| n.len() != features) {
            return Err(invalid(format!("feature_names does not list {features} features")));
        }
        // Features a Dataset made from arrays are called `Column_<i>`: no real names.
        let names = names.filter(|n| !n.iter().enumerate().all(|(i, name)| *name == format!("Column_{i}")));
        let categorical: Vec<bool> = match header.get("feature_infos") {
            Some(infos) => infos.split_whitespace().map(|i| !i.starts_with('[') && i != "none").collect(),
            None => vec![false; features],
        };
        if categorical.len() != features {
            return Err(invalid(format!("feature_infos does not describe {features} features")));
        }

        let mut trees = Vec::new();
        let mut start = first_tree;
        while start < end {
            let next = lines[start + 1..end].iter().position(|l| l.starts_with("Tree=")).map_or(end, |p| start + 1 + p);
            let index = trees.len();
            let section = fields(&lines[start + 1..next]);
            trees.push(TreeSpec { nodes: tree_nodes(index, &section)?, group: index % per_iteration });
            start = next;
        }
        let iterations = trees.len() / per_iteration;
        let ensemble = Ensemble::new(trees, features, per_iteration).map_err(|e| match e {
            Error::InvalidPackage(why) => invalid(why),
            other => other,
        })?;
        let pandas_categories = pandas_categories(&lines[end..])?;
        Ok(Self {
            ensemble,
            objective,
            feature_names: names,
            features,
            categorical,
            pandas_categories,
            average_over: average.then_some(iterations.max(1)),
        })
    }
}

/// The `pandas_categorical:` line at the end of the file: one list of categories per
/// categorical column of the training frame, or `null`.
fn pandas_categories(tail: &[&str]) -> Result<Vec<PandasCategories>> {
    let Some(line) = tail.iter().find_map(|l| l.strip_prefix("pandas_categorical:")) else { return Ok(Vec::new()) };
    let lists: Option<Vec<Vec<serde_json::Value>>> =
        serde_json::from_str(line).map_err(|e| invalid(format!("pandas_categorical is not readable: {e}")))?;
    Ok(lists
        .unwrap_or_default()
        .into_iter()
        .map(|list| {
            let strings: Option<Vec<String>> = list.iter().map(|v| v.as_str().map(str::to_owned)).collect();
            strings.map_or(PandasCategories::Other, PandasCategories::Strings)
        })
        .collect())
}

/// LightGBM's internal nodes are numbered `0..num_leaves - 1` and its leaves `~child`;
/// here leaves follow the internal nodes.
fn tree_nodes(tree: usize, fields: &BTreeMap<String, String>) -> Result<Vec<TreeNode<f64>>> {
    let leaves = count(fields, "num_leaves", &format!("tree {tree}"))?;
    if leaves == 0 {
        return Err(invalid(format!("tree {tree} has no leaves")));
    }
    if fields.get("is_linear").is_some_and(|l| l != "0") {
        return Err(invalid(format!(
            "tree {tree} is a linear tree (`linear_tree=True`), which is not supported here: train without linear trees"
        )));
    }
    let leaf_values: Vec<f64> = values(fields, "leaf_value", tree, leaves)?;
    if leaves == 1 {
        return Ok(vec![TreeNode::Leaf(leaf_values[0])]);
    }
    let inner = leaves - 1;
    let features: Vec<usize> = values(fields, "split_feature", tree, inner)?;
    let thresholds: Vec<f64> = values(fields, "threshold", tree, inner)?;
    let decisions: Vec<i8> = values(fields, "decision_type", tree, inner)?;
    let left: Vec<i64> = values(fields, "left_child", tree, inner)?;
    let right: Vec<i64> = values(fields, "right_child", tree, inner)?;
    let categories =
        if fields.contains_key("num_cat") { count(fields, "num_cat", &format!("tree {tree}"))? } else { 0 };
    let (boundaries, bits): (Vec<usize>, Vec<u32>) = if categories > 0 {
        let boundaries: Vec<usize> = values(fields, "cat_boundaries", tree, categories.saturating_add(1))?;
        let words = *boundaries.last().unwrap_or(&0);
        (boundaries, values(fields, "cat_threshold", tree, words)?)
    } else {
        (Vec::new(), Vec::new())
    };
    let child = |c: i64, node: usize| -> Result<usize> {
        let index = if c >= 0 { usize::try_from(c).ok() } else { usize::try_from(!c).ok().map(|leaf| inner + leaf) };
        index.filter(|&i| i < inner + leaves).ok_or_else(|| invalid(format!("tree {tree}, node {node}: child {c}")))
    };
    let mut nodes = Vec::with_capacity(inner + leaves);
    for node in 0..inner {
        let decision = decisions[node];
        let default_left = decision & 2 != 0;
        let test = if decision & 1 != 0 {
            let set = thresholds[node];
            let words = (set >= 0.0 && set.fract() == 0.0)
                .then_some(set as usize)
                .and_then(|s| Some(*boundaries.get(s)?..*boundaries.get(s + 1)?))
                .filter(|w| w.start <= w.end && w.end <= bits.len())
                .ok_or_else(|| invalid(format!("tree {tree}, node {node}: category set {set}")))?;
            Test::InCategories { bitset: bits[words].to_vec() }
        } else {
            let threshold = thresholds[node];
            if threshold.is_nan() {
                return Err(invalid(format!("tree {tree}, node {node}: threshold NaN")));
            }
            // None: a missing value is compared as zero; NaN: it takes the default side.
            let missing_left = if (decision >> 2) & 3 == 0 { 0.0 <= threshold } else { default_left };
            match (decision >> 2) & 3 {
                1 => Test::AtMostZeroMissing { threshold, default_left },
                // `x <= inf` holds for every number, which no `x < t` says.
                _ if threshold == f64::INFINITY => Test::AtMost { threshold, missing_left },
                // `x <= t` is `x < next_up(t)`, exactly.
                _ => Test::Less { threshold: threshold.next_up(), missing_left },
            }
        };
        nodes.push(TreeNode::Branch {
            feature: features[node],
            test,
            left: child(left[node], node)?,
            right: child(right[node], node)?,
        });
    }
    nodes.extend(leaf_values.into_iter().map(TreeNode::Leaf));
    Ok(nodes)
}
