//! Importer for the old `wackamole.conf`.
