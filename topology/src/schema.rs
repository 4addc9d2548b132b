//! The JSON Schema of the topology format, generated from the types. The
//! committed copy (`topology/schema/topology.v1.json`) is checked against
//! the generated one by a test, so the two never drift.

use crate::model::Topology;

/// The JSON Schema of format v1, pretty-printed.
pub fn schema_json() -> String {
    let schema = schemars::schema_for!(Topology);
    serde_json::to_string_pretty(&schema).expect("a schema always serializes") + "\n"
}

/// The committed schema file, as served at `/schema/topology.v1.json`.
pub const COMMITTED_SCHEMA: &str = include_str!("../schema/topology.v1.json");
