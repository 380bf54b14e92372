//! The XDP data plane: every branch through BPF_PROG_TEST_RUN, and attached
//! to veth pairs in network namespaces (needs root: `cargo xtask test`).

#[path = "../support/mod.rs"]
mod support;

mod netns;
mod testrun;
