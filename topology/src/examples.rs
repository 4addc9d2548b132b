//! The built-in example labs, seeded into an empty state directory.

pub const TRIANGLE: &str = include_str!("../../examples/triangle.yaml");
pub const ROUTER: &str = include_str!("../../examples/router.yaml");
pub const ALL: &[&str] = &[TRIANGLE, ROUTER];
