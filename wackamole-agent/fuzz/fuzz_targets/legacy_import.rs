//! Arbitrary text as an old `wackamole.conf`: the importer never panics;
//! what it prints always validates; its errors are normal ones (never "please
//! report this"), bounded in size and free of control characters from the
//! input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use wackamole::config::legacy::import;
use wackamole::config::{parse, AnyInterface};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match import(text, "fuzz.conf") {
        Ok(imp) => {
            if let Err(e) = parse(&imp.toml, "imported.toml", &AnyInterface) {
                panic!(
                    "import printed a config that does not validate: {e}\n{}",
                    imp.toml
                );
            }
        }
        Err(e) => {
            let shown = e.to_string();
            assert!(!e.message.trim().is_empty());
            assert!(!shown.contains("please report"), "{shown}");
            // A quoted value is at most 80 bytes of input, each escaped in
            // at most 10 (`\u{1b}`), and a message quotes at most two.
            assert!(shown.len() <= 2000, "{} bytes: {shown}", shown.len());
            assert!(!shown.chars().any(|c| c.is_control()), "{shown:?}");
        }
    }
});
