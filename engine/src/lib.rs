//! The MiniVM engine: everything that touches the host.
//!
//! Architecture invariant: this crate knows nothing of HTTP or Leptos, and it
//! is never compiled to wasm (the guard below makes that a build error).
//! It holds the lab store, the image store and build, seeds, QEMU launch,
//! netlink, the planner and the executor/reconciler (`lab`). See
//! ARCHITECTURE.md for the map.

#[cfg(target_arch = "wasm32")]
compile_error!("the engine touches the host and must never be compiled into the wasm bundle");

pub mod accel;
pub mod capture;
pub mod captures;
pub mod check;
pub mod console;
pub mod doctor;
pub mod error;
pub mod events;
pub mod fsutil;
pub mod image;
pub mod impair;
pub mod kubevirt;
pub mod lab;
pub mod labtest;
pub mod link;
pub mod mgmt;
pub use topology::lifecycle;
pub mod net;
pub mod ops;
pub mod plan;
pub mod process;
pub mod qemu;
pub mod qga;
pub mod qmp;
pub mod relay;
pub mod seed;
pub mod service;
pub mod snapshot;
pub mod status;
pub mod store;
pub mod templates;
pub mod vm;
pub mod vmdir;
pub mod warm;

pub use error::report;
pub use store::{LabEntry, LabStore, StoreError};
