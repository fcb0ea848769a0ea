//! The native-only integration tests, one module per area, in one test binary: each binary links
//! the whole engine and wgpu, so one link instead of thirteen saves CI minutes, and the tests of
//! every area share the cores. `tests/ops.rs` and `tests/web.rs` stay binaries of their own:
//! they also run in the browser (`cargo test --target wasm32-unknown-unknown --test ops --test
//! web`).
#![cfg(not(target_arch = "wasm32"))]

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod apps;
mod autotune;
mod cli;
mod convert;
mod default_model;
mod embed;
mod faults;
mod fuzz;
mod graph;
mod hostile;
mod pipeline;
mod ptdit;
mod quantized;
mod sampler;
mod step_cache;
mod t5;
mod upload;
mod vae;
