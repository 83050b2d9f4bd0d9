//! Configuration errors: each one names the JSON path it is about.

use std::fmt;

/// One problem with a configuration document.
///
/// `path` is the JSON path of the offending value, e.g. `topology.replicas` or
/// `topology.cores[3]`; it is empty for problems with the document as a whole
/// (unreadable file, JSON that does not parse at the top level).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// JSON path of the offending value, `""` for the whole document.
    pub path: String,
    /// What is wrong and what is allowed instead.
    pub message: String,
}

impl ConfigError {
    /// Builds an error for the value at `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Formats as `{path}: {message}`, e.g.
/// `topology.replicas: 0 is out of range 1..=64`; just `{message}` when the
/// path is empty.
impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a configuration document, in document order.
///
/// Validation never stops at the first problem; a document that fails to
/// deserialize (malformed JSON, wrong type, unknown field) yields exactly one
/// error because parsing cannot continue past it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

/// Formats one error per line, without a trailing newline.
impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        ConfigErrors(vec![error])
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}
