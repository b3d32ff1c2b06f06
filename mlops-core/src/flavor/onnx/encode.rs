//! String inputs that only one-hot encoders read are fed as category codes.
//!
//! A string tensor costs an allocation per value, and each encoder hashes every string
//! again. Where every reader of a string graph input is a `OneHotEncoder` with the same
//! `cats_strings` (that ignores unknown categories), the graph is rewritten before it is
//! planned: the input becomes int64 and the encoders take `cats_int64s` `0..k`, and the
//! feed codes each string once, without allocating, as its position in the list (its last
//! one, as onnxruntime's map keeps), `-1` for an unknown one. The outputs are the same.

use std::collections::BTreeMap;

use tract_onnx::pb::attribute_proto::AttributeType;
use tract_onnx::pb::{AttributeProto, GraphProto, type_proto};

/// ONNX's element types for strings and int64.
const STRING: i32 = 8;
const INT64: i32 = 7;

/// The category codes of a string input: each string's index among the encoders'
/// categories.
pub(crate) type Codes = foldhash::HashMap<String, i64>;

/// Rewrites `graph` as the module docs say and returns, per rewritten input, its codes.
pub(crate) fn encode_string_inputs(graph: &mut GraphProto) -> BTreeMap<String, Codes> {
    let mut encoded = BTreeMap::new();
    let outputs: Vec<String> = graph.output.iter().map(|o| o.name.clone()).collect();
    for input in 0..graph.input.len() {
        let name = graph.input[input].name.clone();
        let is_string = graph.input[input]
            .r#type
            .as_ref()
            .and_then(|t| t.value.as_ref())
            .is_some_and(|v| matches!(v, type_proto::Value::TensorType(tensor) if tensor.elem_type == STRING));
        if !is_string || outputs.contains(&name) {
            continue;
        }
        let readers: Vec<usize> =
            graph.node.iter().enumerate().filter(|(_, n)| n.input.contains(&name)).map(|(i, _)| i).collect();
        let Some(categories) = shared_categories(graph, &readers) else { continue };
        for &reader in &readers {
            let node = &mut graph.node[reader];
            node.attribute.retain(|a| a.name != "cats_strings");
            node.attribute.push(AttributeProto {
                name: "cats_int64s".into(),
                r#type: AttributeType::Ints as i32,
                ints: (0..categories.len() as i64).collect(),
                ..Default::default()
            });
        }
        if let Some(type_proto::Value::TensorType(tensor)) =
            graph.input[input].r#type.as_mut().and_then(|t| t.value.as_mut())
        {
            tensor.elem_type = INT64;
        }
        let codes: Codes = categories.into_iter().enumerate().map(|(i, c)| (c, i as i64)).collect();
        encoded.insert(name, codes);
    }
    encoded
}

/// The string categories every node of `readers` one-hot encodes, when they all are
/// `OneHotEncoder`s with the same list that ignore unknown categories.
fn shared_categories(graph: &GraphProto, readers: &[usize]) -> Option<Vec<String>> {
    let mut shared: Option<Vec<String>> = None;
    for &reader in readers {
        let node = &graph.node[reader];
        if node.op_type != "OneHotEncoder" || node.input.len() != 1 {
            return None;
        }
        let attribute = |name: &str| node.attribute.iter().find(|a| a.name == name);
        if attribute("zeros").is_some_and(|z| z.i == 0) || attribute("cats_int64s").is_some_and(|a| !a.ints.is_empty())
        {
            return None;
        }
        let strings: Vec<String> = attribute("cats_strings")?
            .strings
            .iter()
            .map(|s| String::from_utf8(s.clone()).ok())
            .collect::<Option<_>>()?;
        if strings.is_empty() || shared.as_ref().is_some_and(|s| *s != strings) {
            return None;
        }
        shared = Some(strings);
    }
    shared
}
