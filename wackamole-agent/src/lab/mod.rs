//! Demonstrations and test rigs in network namespaces (built on
//! [`crate::testbed`]): the data-plane demo of `wackamole-lab demo`, and the
//! veth rig the namespace tests share with it.

pub mod arping;
pub mod dataplane_demo;
mod veth_lab;

pub use veth_lab::VethLab;
