//! Documents that cannot be deserialized: one error, with path and position.

use super::errors;

#[test]
fn type_error_names_path() {
    let doc = "{\n  \"tcp\": {\n    \"mss\": \"big\"\n  }\n}";
    assert_eq!(
        errors(doc),
        [r#"tcp.mss: invalid type: string "big", expected u16 at line 3 column 16"#]
    );
}

#[test]
fn type_error_in_array_names_index() {
    assert_eq!(
        errors(r#"{"topology": {"cores": [0, -1]}}"#),
        ["topology.cores[1]: invalid value: integer `-1`, expected u32 at line 1 column 29"]
    );
}

#[test]
fn unknown_top_level_field() {
    assert_eq!(
        errors(r#"{"tcpp": {}}"#),
        [
            "tcpp: unknown field `tcpp`, expected one of `identity`, `port`, `topology`, `tcp`, \
          `host`, `metrics`, `logging`, `xdp` at line 1 column 7"
        ]
    );
}

#[test]
fn unknown_nested_field() {
    assert_eq!(
        errors(r#"{"topology": {"idle": {"spin": 1}}}"#),
        [
            "topology.idle.spin: unknown field `spin`, expected one of `spin_polls`, \
             `park_after_us`, `when_oversubscribed_park` at line 1 column 29"
        ]
    );
}

#[test]
fn unknown_variant_lists_allowed_values() {
    assert_eq!(
        errors(r#"{"tcp": {"congestion_control": "cubic"}}"#),
        [
            "tcp.congestion_control: unknown variant `cubic`, expected one of `reno`, `dctcp`, \
          `timely`, `dctcp-rate` at line 1 column 38"
        ]
    );
    assert_eq!(
        errors(r#"{"logging": {"format": "yaml"}}"#),
        ["logging.format: unknown variant `yaml`, expected `text` or `json` at line 1 column 29"]
    );
}

#[test]
fn malformed_json_has_line_and_column() {
    let found = errors("{\n  \"tcp\": {\"mss\": 1400,}\n}");
    assert_eq!(found, ["tcp: trailing comma at line 2 column 23"]);
    assert!(found[0].contains("line") && found[0].contains("column"));
}

#[test]
fn truncated_and_trailing_input() {
    assert_eq!(errors(""), ["EOF while parsing a value at line 1 column 0"]);
    assert_eq!(errors("{} x"), ["trailing characters at line 1 column 4"]);
    assert_eq!(
        errors("[]"),
        ["invalid type: sequence, expected a JSON object at line 1 column 0"]
    );
}

#[test]
fn sections_must_be_objects() {
    assert_eq!(
        errors(r#"{"host": null}"#),
        ["host: invalid type: null, expected a JSON object at line 1 column 13"]
    );
    // Derived structs would accept an array (fields by position); `[]` must
    // not silently mean "all defaults".
    assert_eq!(
        errors(r#"{"tcp": []}"#),
        ["tcp: invalid type: sequence, expected a JSON object at line 1 column 8"]
    );
    assert_eq!(
        errors(r#"{"port": {"impairment": {"rx": [0.5]}}}"#),
        ["port.impairment.rx: invalid type: sequence, expected a JSON object at line 1 column 31"]
    );
}
