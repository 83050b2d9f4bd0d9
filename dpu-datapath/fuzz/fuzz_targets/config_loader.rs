//! The configuration loader fed arbitrary documents (issue 21: every
//! untrusted input fuzzed): `Config::from_json_str`, which deserializes
//! (serde_path_to_error over serde_json, sections only from objects,
//! unknown fields refused) and then validates every field and cross-field
//! rule. Bytes that are not UTF-8 are read lossily (`Config::from_file`
//! refuses them with the file's name before parsing).
//!
//! Checks: no panic, no stack exhaustion; an error is a value that says
//! something: at least one `ConfigError`, each with a non-empty message and
//! either a JSON path naming the field or serde_json's position ("at line L
//! column C") for a document that is not well formed; a document that does
//! not deserialize gives exactly one error; a validation error's path
//! starts with a section name. A document that loads writes back
//! (`to_json_pretty`) to text that loads to an equal configuration, which
//! validates.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipeline_config::Config;

const SECTIONS: [&str; 7] = [
    "identity", "port", "topology", "tcp", "host", "metrics", "logging",
];

/// serde_json's position suffix, which every deserialization error carries.
fn has_position(message: &str) -> bool {
    message
        .rsplit_once(" at line ")
        .and_then(|(_, rest)| rest.split_once(" column "))
        .is_some_and(|(line, column)| line.parse::<u64>().is_ok() && column.parse::<u64>().is_ok())
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    match Config::from_json_str(&text) {
        Ok(config) => {
            let written = config.to_json_pretty();
            match Config::from_json_str(&written) {
                Ok(again) => assert_eq!(again, config, "write -> load changed the configuration"),
                Err(e) => panic!("a loaded configuration does not load back: {e}\n{written}"),
            }
            assert_eq!(config.validate(), Ok(()));
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error without any ConfigError");
            assert!(!errors.to_string().is_empty());
            let parse_error = errors.0.iter().any(|e| has_position(&e.message));
            if parse_error {
                assert_eq!(
                    errors.0.len(),
                    1,
                    "a document that does not parse: {errors}"
                );
            }
            for e in &errors.0 {
                assert!(!e.message.is_empty(), "an error without a message: {e:?}");
                assert!(!e.to_string().is_empty());
                if parse_error {
                    assert!(has_position(&e.message), "{e}");
                } else {
                    // Validation: the path names the field.
                    let section = e.path.split(['.', '[']).next().unwrap_or_default();
                    assert!(
                        SECTIONS.contains(&section),
                        "a validation error that names no field: {e:?}"
                    );
                }
            }
        }
    }
});
