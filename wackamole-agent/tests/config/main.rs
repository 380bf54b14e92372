//! Configuration: validation, reload decisions and the legacy importer.

#[path = "../support/mod.rs"]
mod support;

mod corpus;
mod legacy;
mod reload;
mod validate;
