use mlops_core::{Error, ModelName, ModelUri, check_alias};
use proptest::prelude::*;

#[test]
fn parses_every_form_and_prints_it_back() {
    let cases = [
        "models:/transactions@champion",
        "models:/main.fraud.transactions@challenger",
        "models:/transactions/3",
        "models:/fraud.transactions/latest",
        "runs:/8c1f0a/model",
        "runs:/8c1f0a/nested/model",
    ];
    for case in cases {
        let uri: ModelUri = case.parse().unwrap();
        assert_eq!(uri.to_string(), case);
    }
    let uri: ModelUri = "models:/main.fraud.transactions/12".parse().unwrap();
    assert_eq!(uri, ModelUri::version("main.fraud.transactions", 12).unwrap());
    assert_eq!(uri.model_name().unwrap().parts().collect::<Vec<_>>(), ["main", "fraud", "transactions"]);
    assert!(
        matches!("runs:/abc/model".parse::<ModelUri>().unwrap(), ModelUri::Run { run_id, path } if run_id == "abc" && path == "model")
    );
}

fn position_of(uri: &str) -> (usize, String) {
    match uri.parse::<ModelUri>() {
        Err(Error::InvalidUri { position, reason, uri: echoed }) => {
            assert_eq!(echoed, uri);
            (position, reason)
        }
        other => panic!("{uri}: expected InvalidUri, got {other:?}"),
    }
}

#[test]
fn malformed_uris_say_what_and_where() {
    assert_eq!(position_of("model:/x@a").0, 0);
    assert_eq!(position_of("models:/@champion").0, 8);
    let (position, reason) = position_of("models:/fr aud@champion");
    assert_eq!(position, 10);
    assert!(reason.contains("` `"), "{reason}");
    assert_eq!(position_of("models:/a.b.c.d/1").0, 14);
    assert_eq!(position_of("models:/a..b/1").0, 10);
    let (position, reason) = position_of("models:/transactions/x3");
    assert_eq!(position, 21);
    assert!(reason.contains("positive integer"), "{reason}");
    assert!(position_of("models:/transactions/0").1.contains("start at 1"));
    assert!(position_of("models:/transactions/").1.contains("missing version"));
    assert!(position_of("models:/transactions").1.contains("@<alias>"));
    assert!(position_of("models:/transactions@").1.contains("empty"));
    assert_eq!(position_of("models:/transactions@v2").0, 21);
    assert!(position_of("models:/transactions@latest").1.contains("reserved"));
    assert!(position_of("runs:/abc").1.contains("artifact path"));
    assert!(position_of("runs://model").1.contains("run id"));
    assert!(position_of("models:/transactions/99999999999999999999999").1.contains("too large"));
}

#[test]
fn names_and_aliases_are_validated_on_their_own() {
    assert!(ModelName::new("a.b.c").is_ok());
    let err = ModelName::new("a/b").unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(ref m) if m.contains("`/`")), "{err}");
    assert!(check_alias("champion").is_ok());
    assert!(check_alias("blue-green_2").is_ok());
    assert!(check_alias("V12").is_err());
    assert!(check_alias("").is_err());
    assert!(ModelUri::alias("transactions", "latest").is_err());
    assert!(ModelUri::version("transactions", 0).is_err());
    // serde goes through validation
    assert!(serde_json::from_str::<ModelName>("\"bad name\"").is_err());
    assert_eq!(serde_json::from_str::<ModelName>("\"ok.name\"").unwrap().as_str(), "ok.name");
}

fn part() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,12}"
}

fn name() -> impl Strategy<Value = String> {
    prop::collection::vec(part(), 1..=3).prop_map(|parts| parts.join("."))
}

proptest! {
    #[test]
    fn display_then_parse_is_identity(name in name(), alias in "[a-z_][a-z0-9_-]{0,10}", version in 1u64..1_000_000) {
        prop_assume!(check_alias(&alias).is_ok());
        for uri in [
            ModelUri::alias(name.clone(), alias).unwrap(),
            ModelUri::version(name.clone(), version).unwrap(),
            ModelUri::Latest { name: ModelName::new(name).unwrap() },
        ] {
            prop_assert_eq!(uri.to_string().parse::<ModelUri>().unwrap(), uri);
        }
    }

    #[test]
    fn parsing_never_panics(input in "\\PC{0,40}") {
        let _ = input.parse::<ModelUri>();
    }
}
