use std::sync::Arc;

use mlops_core::{
    ColSpec, ColumnType, Error, Flavor, FlavorRegistry, MANIFEST_FILE, Model, Package, Schema, Signature,
    TabularClassifierParams,
};
use polars::prelude::*;

fn signature() -> Signature {
    Signature::new(
        Schema::new(vec![
            ColSpec::new("Product", ColumnType::String),
            ColSpec::new("Amount", ColumnType::Double),
            ColSpec::new("when", ColumnType::Datetime),
        ])
        .unwrap(),
    )
}

#[test]
fn a_package_saves_and_reads_back_with_every_checksum_recorded() {
    let example = df!(
        "Product" => ["Product A", "Product B"],
        "Amount" => [10.5, 20.0],
        "when" => [1_700_000_000_000i64, 1_700_000_000_001],
        "ignored" => [1, 2],
    )
    .unwrap()
    .lazy()
    .with_column(col("when").cast(DataType::Datetime(TimeUnit::Milliseconds, None)))
    .collect()
    .unwrap();
    let package = Package::builder("my_flavor", signature())
        .file("weights/w.bin", vec![1u8, 2, 3])
        .unwrap()
        .metadata("trained_by", "tests")
        .input_example(&example)
        .unwrap()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    package.save(dir.path()).unwrap();
    let loaded = Package::read_dir(dir.path()).unwrap();
    assert_eq!(loaded.manifest(), package.manifest());
    assert_eq!(loaded.digest().unwrap(), package.digest().unwrap());
    assert_eq!(loaded.file("weights/w.bin").unwrap().as_ref(), [1, 2, 3]);
    let manifest = loaded.manifest();
    assert_eq!(manifest.flavor, "my_flavor");
    assert_eq!(manifest.metadata["trained_by"], "tests");
    let paths: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["input_example.json", "weights/w.bin"]);
    assert_eq!(
        manifest.files[1].sha256,
        "039058c6f2c0cb492c533b0a4d14ef77cc0f78abccced5287d84a1a2011cfb81" // sha256 of [1, 2, 3]
    );
    // The input example keeps the signature's columns and types.
    let back = loaded.input_example().unwrap().unwrap();
    assert_eq!(back.get_column_names(), ["Product", "Amount", "when"]);
    assert!(back.equals(&signature().enforce(&example).unwrap()));
    // Saving over a package is refused rather than mixing two.
    assert!(matches!(package.save(dir.path()), Err(Error::InvalidArgument(m)) if m.contains("already holds")));
}

#[test]
fn a_tampered_or_incomplete_package_is_refused_naming_the_file() {
    let package = Package::builder("f", signature()).file("model.json", b"{}".to_vec()).unwrap().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    package.save(dir.path()).unwrap();

    std::fs::write(dir.path().join("model.json"), b"[]").unwrap();
    match Package::read_dir(dir.path()) {
        Err(Error::Checksum { path, .. }) => assert_eq!(path, "model.json"),
        other => panic!("expected Checksum, got {other:?}"),
    }
    std::fs::write(dir.path().join("model.json"), b"{ }").unwrap();
    match Package::read_dir(dir.path()) {
        Err(Error::InvalidPackage(m)) => assert!(m.contains("`model.json` is 3 bytes; the manifest records 2"), "{m}"),
        other => panic!("expected a size error, got {other:?}"),
    }
    std::fs::remove_file(dir.path().join("model.json")).unwrap();
    match Package::read_dir(dir.path()) {
        Err(Error::Io { path, .. }) => assert!(path.ends_with("model.json")),
        other => panic!("expected Io naming the file, got {other:?}"),
    }
    std::fs::remove_file(dir.path().join(MANIFEST_FILE)).unwrap();
    assert!(matches!(Package::read_dir(dir.path()), Err(Error::Io { path, .. }) if path.ends_with(MANIFEST_FILE)));

    let manifest = package.manifest_bytes().unwrap();
    let err = Package::from_parts(&manifest, Default::default()).unwrap_err();
    assert!(err.to_string().contains("`model.json` listed in the manifest is missing"), "{err}");
}

#[test]
fn paths_cannot_escape_the_package() {
    for bad in ["../x", "/etc/passwd", "a//b", "manifest.json", "", "a/./b"] {
        assert!(Package::builder("f", signature()).file(bad, vec![]).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn unknown_flavors_are_named() {
    let package = Package::builder("sklearn", signature()).build().unwrap();
    match FlavorRegistry::with_builtins().load(&package) {
        Err(Error::UnknownFlavor { flavor, known }) => {
            assert_eq!(flavor, "sklearn");
            assert_eq!(
                known,
                [
                    "forecaster",
                    "image_classifier",
                    "lightgbm",
                    "onnx",
                    "tabular_classifier",
                    "tabular_regressor",
                    "xgboost"
                ]
            );
        }
        Err(other) => panic!("expected UnknownFlavor, got {other}"),
        Ok(_) => panic!("loaded an unknown flavor"),
    }
}

/// A flavor registered by an application is used for its packages.
struct ConstantFlavor;

struct Constant(Signature);

impl Model for Constant {
    fn signature(&self) -> &Signature {
        &self.0
    }
    fn predict(&self, input: &DataFrame) -> mlops_core::Result<DataFrame> {
        Ok(df!("prediction" => vec![1.0; input.height()])?)
    }
}

impl Flavor for ConstantFlavor {
    fn name(&self) -> &str {
        "constant"
    }
    fn load(&self, package: &Package) -> mlops_core::Result<Arc<dyn Model>> {
        Ok(Arc::new(Constant(package.manifest().signature.clone())))
    }
}

#[test]
fn applications_register_their_own_flavors() {
    let mut flavors = FlavorRegistry::empty();
    flavors.register(Arc::new(ConstantFlavor));
    let model = flavors.load(&Package::builder("constant", signature()).build().unwrap()).unwrap();
    assert_eq!(model.predict(&df!("x" => [1, 2, 3]).unwrap()).unwrap().height(), 3);
}

#[test]
fn a_packaged_model_loads_into_the_same_predictions() {
    let train = df!(
        "Product" => ["A", "B", "A", "B", "C", "C"],
        "Amount" => [1.0, 9.0, 2.0, 8.0, 5.0, 4.0],
        "Label" => [0, 1, 0, 1, 1, 0],
    )
    .unwrap();
    let model = TabularClassifierParams::new("Label")
        .categorical(["Product"])
        .numeric(["Amount"])
        .check()
        .unwrap()
        .fit(&train)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    model.package(Some(&train)).unwrap().save(dir.path()).unwrap();
    let loaded = FlavorRegistry::default().load(&Package::read_dir(dir.path()).unwrap()).unwrap();
    assert_eq!(loaded.signature(), Model::signature(&model));
    assert!(loaded.predict(&train).unwrap().equals(&model.predict(&train).unwrap()));

    // A flavor file the flavor cannot read is an error, not a panic.
    let broken = Package::builder("tabular_classifier", Model::signature(&model).clone())
        .file("preprocessor.json", b"not json".to_vec())
        .unwrap()
        .file("model.json", b"{}".to_vec())
        .unwrap()
        .build()
        .unwrap();
    assert!(
        matches!(FlavorRegistry::default().load(&broken), Err(Error::Json { what, .. }) if what.contains("preprocessor.json"))
    );
}

#[test]
fn concurrent_savers_and_parquet_writers_never_mix_or_tear_their_files() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("packages").join("candidate");
    let packages: Vec<Package> = (0..6u8)
        .map(|i| Package::builder("f", signature()).file("model.json", vec![i; 100_000]).unwrap().build().unwrap())
        .collect();
    let outcomes: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let savers: Vec<_> = packages.iter().map(|p| scope.spawn(|| p.save(&dir).map_err(|e| e.to_string()))).collect();
        savers.into_iter().map(|s| s.join().unwrap()).collect()
    });
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1, "{outcomes:?}");
    let mut refused = outcomes.iter().filter_map(|o| o.as_ref().err());
    assert!(refused.all(|e| e.contains("already holds") || e.contains("not empty")), "{outcomes:?}");
    let saved = Package::read_dir(&dir).unwrap();
    assert!(packages.iter().any(|p| p.digest().unwrap() == saved.digest().unwrap()), "one saver's files, whole");

    let path = root.path().join("scores.parquet");
    let frames: Vec<DataFrame> = (0..6).map(|i| df!("x" => vec![i as f64; 50_000]).unwrap()).collect();
    std::thread::scope(|scope| {
        for frame in &frames {
            let path = &path;
            scope.spawn(move || mlops_core::write_parquet(&mut frame.clone(), path).unwrap());
        }
    });
    let written = mlops_core::read_parquet(&path).unwrap();
    assert!(frames.iter().any(|f| f.equals(&written)), "one writer's frame, whole");
    let mut names: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["packages", "scores.parquet"], "no staging file is left behind");
    let leftovers: Vec<_> = std::fs::read_dir(root.path().join("packages")).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no staging directory is left behind");
}

#[test]
fn a_package_never_reads_through_a_symbolic_link() {
    let package = Package::builder("f", signature()).file("weights/w.bin", vec![7u8; 10]).unwrap().build().unwrap();
    let root = tempfile::tempdir().unwrap();
    let outside = root.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("w.bin"), [7u8; 10]).unwrap();

    // The file itself a link to an identical file outside.
    let linked_file = root.path().join("linked-file");
    package.save(&linked_file).unwrap();
    std::fs::remove_file(linked_file.join("weights/w.bin")).unwrap();
    std::os::unix::fs::symlink(outside.join("w.bin"), linked_file.join("weights/w.bin")).unwrap();
    // A directory on the way a link.
    let linked_dir = root.path().join("linked-dir");
    package.save(&linked_dir).unwrap();
    std::fs::remove_dir_all(linked_dir.join("weights")).unwrap();
    std::os::unix::fs::symlink(&outside, linked_dir.join("weights")).unwrap();
    for dir in [&linked_file, &linked_dir] {
        match Package::read_dir(dir) {
            Err(Error::InvalidPackage(m)) => assert!(m.contains("symbolic link"), "{m}"),
            other => panic!("{}: expected a symbolic-link error, got {other:?}", dir.display()),
        }
    }
}
