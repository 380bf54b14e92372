//! The XDP data plane: load, attach, pin, and drive the maps.
