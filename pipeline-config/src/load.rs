//! Reading and writing the JSON document.

use std::path::Path;

use crate::{Config, ConfigError, ConfigErrors};

impl Config {
    /// Parses a JSON document, filling in defaults for anything missing, then
    /// [validates](Config::validate) it.
    ///
    /// A document that cannot be deserialized yields one error whose path is
    /// where parsing stopped and whose message keeps serde_json's text,
    /// including `line L column C`, e.g.
    /// `tcp.mss: invalid type: string "big", expected u16 at line 3 column 16`.
    /// Unknown fields are errors at the path of the unknown key.
    pub fn from_json_str(text: &str) -> Result<Config, ConfigErrors> {
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let mut track = serde_path_to_error::Track::new();
        let tracked = serde_path_to_error::Deserializer::new(&mut deserializer, &mut track);
        let config: Config = crate::object::deserialize(tracked)
            .map_err(|error| ConfigError::new(json_path(&track.path()), error.to_string()))?;
        deserializer
            .end()
            .map_err(|error| ConfigError::new("", error.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Reads and parses the document at `path` with
    /// [`from_json_str`](Config::from_json_str). A read failure is a single
    /// error with an empty path whose message names the file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            ConfigError::new(
                "",
                format!("cannot read config file {}: {error}", path.display()),
            )
        })?;
        Config::from_json_str(&text)
    }

    /// The whole configuration as pretty-printed JSON, every field present,
    /// ending in a newline. For a valid `Config`,
    /// [`from_json_str`](Config::from_json_str) reads it back to an equal one
    /// (a non-finite probability, which validation rejects, is written as
    /// `null`).
    pub fn to_json_pretty(&self) -> String {
        let mut text = serde_json::to_string_pretty(self)
            .expect("a Config always serializes: it has no maps and no custom Serialize");
        text.push('\n');
        text
    }
}

/// `tcp.mss`, `topology.cores[3]`; the root is `""`, and the `?` segments
/// serde_path_to_error adds where a key had not been read yet are dropped
/// (`tcp.?` becomes `tcp`).
fn json_path(path: &serde_path_to_error::Path) -> String {
    let mut text = path.to_string();
    while let Some(rest) = text.strip_suffix('?') {
        text = rest.strip_suffix('.').unwrap_or(rest).to_owned();
    }
    if text == "." {
        text.clear();
    }
    text
}
