//! Configuration: TOML schema, validation, legacy import.
