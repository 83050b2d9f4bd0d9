//! Loading from a file.

use std::path::PathBuf;

use pipeline_config::{Config, ConfigError, ConfigErrors};

fn temp_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("pipeline-config-{}-{name}", std::process::id()))
}

#[test]
fn reads_a_file() {
    let path = temp_path("ok.json");
    std::fs::write(&path, r#"{"topology": {"replicas": 2}}"#).unwrap();
    let loaded = Config::from_file(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(loaded.unwrap().topology.replicas, 2);
}

#[test]
fn reports_file_content_errors() {
    let path = temp_path("bad.json");
    std::fs::write(&path, "{\n  \"metrics\": {\"listen\": \"nowhere\"}\n}\n").unwrap();
    let loaded = Config::from_file(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(
        loaded.unwrap_err().to_string(),
        r#"metrics.listen: "nowhere" is not a socket address; expected IP:port like "127.0.0.1:9464" or "[::1]:9464""#
    );
}

#[test]
fn missing_file_names_the_file() {
    let path = temp_path("missing.json");
    let errors = Config::from_file(&path).unwrap_err();
    let message = format!(
        "cannot read config file {}: No such file or directory (os error 2)",
        path.display()
    );
    assert_eq!(
        errors,
        ConfigErrors(vec![ConfigError::new("", message.clone())])
    );
    assert_eq!(errors.to_string(), message, "an empty path is not printed");
}
