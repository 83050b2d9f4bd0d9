//! Integration tests of the configuration document: one binary, one module
//! per concern.

mod defaults;
mod file;
mod parse;
mod topology;
mod validate;

use pipeline_config::Config;

/// The errors `doc` produces, formatted as `path: message`.
fn errors(doc: &str) -> Vec<String> {
    match Config::from_json_str(doc) {
        Ok(config) => panic!("expected errors, got {config:?}"),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
}

/// The errors `config` fails validation with, formatted as `path: message`.
fn invalid(config: &Config) -> Vec<String> {
    match config.validate() {
        Ok(()) => panic!("expected errors for {config:?}"),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
}
