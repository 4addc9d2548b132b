//! The MiniVM topology model.
//!
//! Architecture invariant: this crate does no I/O. It turns text into a
//! [`Topology`], checks it ([`validate`]), derives host names from it
//! ([`names`]) and turns it back into text. It compiles to wasm (the editor
//! validates as the user types) and to native (the CLI and the engine).

pub mod capture;
pub mod clab;
pub mod events;
pub mod examples;
pub mod graph;
pub mod labtest;
pub mod lifecycle;
pub mod mgmt;
pub mod model;
pub mod names;
pub mod net;
pub mod nodetpl;
pub mod parse;
pub mod resolve;
pub mod schema;
pub mod templates;
pub mod time;
pub mod validate;
pub mod words;

pub use model::*;
pub use parse::{
    parse, parse_and_validate, parse_read_and_validate, to_json, to_yaml, Format, LoadError,
    MAX_FILE_BYTES,
};
pub use validate::{validate, Problem};

/// The newest topology format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// The revision of a stored lab: a hash of its file's bytes. The editor
/// computes it too, to recognise its own save coming back as an event.
pub fn revision_of(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    format!("{:016x}", names::stable_hash(&[&text]))
}
