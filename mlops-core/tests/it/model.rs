use std::sync::Arc;

use mlops_core::{ColSpec, ColumnType, Error, Model, ModelWrapper, Result, Schema, Signature};
use polars::prelude::*;

/// Sums two columns; records the dtype preprocessing saw.
struct Sum {
    signature: Signature,
}

impl ModelWrapper for Sum {
    type Features = (Vec<f64>, DataType);

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn preprocess(&self, input: &DataFrame) -> Result<Self::Features> {
        let a = input.column("a")?;
        let b = input.column("b")?.f64()?;
        let sums = a.f64()?.no_null_iter().zip(b.no_null_iter()).map(|(a, b)| a + b).collect();
        Ok((sums, a.dtype().clone()))
    }

    fn predict_features(&self, (sums, _): &Self::Features) -> Result<DataFrame> {
        Ok(df!("prediction" => sums.clone())?)
    }
}

fn sum() -> Sum {
    Sum {
        signature: Signature::new(
            Schema::new(vec![ColSpec::new("a", ColumnType::Double), ColSpec::new("b", ColumnType::Double)]).unwrap(),
        ),
    }
}

#[test]
fn a_wrapper_enforces_the_signature_before_preprocessing() {
    let model = sum();
    // `a` arrives as i32 and is widened before preprocess reads it as f64.
    let frame = df!("b" => [0.5, 1.5], "a" => [1i32, 2], "extra" => ["x", "y"]).unwrap();
    let (_, seen) = model.preprocess(&ModelWrapper::signature(&model).enforce(&frame).unwrap()).unwrap();
    assert_eq!(seen, DataType::Float64);
    let out = Model::predict(&model, &frame).unwrap();
    assert_eq!(out.column("prediction").unwrap().f64().unwrap().to_vec(), [Some(1.5), Some(3.5)]);
    match Model::predict(&model, &df!("a" => [1.0]).unwrap()) {
        Err(Error::MissingColumns { columns }) => assert_eq!(columns, ["b"]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn models_are_object_safe_and_shareable() {
    let model: Arc<dyn Model> = Arc::new(sum());
    let shared = Arc::clone(&model);
    let handle = std::thread::spawn(move || shared.predict(&df!("a" => [1.0], "b" => [2.0]).unwrap()).unwrap());
    assert_eq!(handle.join().unwrap().column("prediction").unwrap().f64().unwrap().get(0), Some(3.0));
    // Arc<M> is itself a Model.
    fn height<M: Model>(m: &M) -> usize {
        m.predict(&df!("a" => [1.0, 2.0], "b" => [2.0, 3.0]).unwrap()).unwrap().height()
    }
    assert_eq!(height(&model), 2);
}
