//! Allocation engine: Wackamole's algorithm as a pure state machine.
