//! What the loader reads of a program object before the runtime sees it
//! (`xdp::object`), and the operator's hexadecimal keys and values
//! (`xdp::ops::unhex`), fed arbitrary bytes (issue 17: an operator may load
//! any file). The input is the object; its first 64 bytes are also read as
//! hexadecimal text.
//!
//! Checks: never a panic; a refusal says what was wrong; an accepted
//! object's maps pass or fail their own validation with a message, and
//! its section check names the section.
#![no_main]

use dpu_datapath::xdp::object::{inspect, provided_names};
use dpu_datapath::xdp::ops::{hex, unhex};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(&data[..data.len().min(64)]);
    match unhex("key", &text) {
        Ok(bytes) => {
            // What it printed back parses to the same bytes.
            assert_eq!(unhex("key", &hex(&bytes)).unwrap(), bytes);
        }
        Err(e) => assert!(e.starts_with("key "), "{e}"),
    }
    match inspect(data) {
        Err(e) => assert!(!e.is_empty()),
        Ok(info) => {
            for (name, def) in &info.maps {
                if let Err(e) = def.validate(name, 4) {
                    assert!(e.starts_with(&format!("map {name}: ")), "{e}");
                }
            }
            let names = provided_names(&info.maps);
            assert_eq!(names.len(), 3 + 4 * info.maps.len());
            for section in ["xdp", ".text"] {
                if let Err(e) = info.check(section) {
                    assert!(!e.is_empty());
                }
            }
        }
    }
});
