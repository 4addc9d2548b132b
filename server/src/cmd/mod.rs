pub mod serve;
pub mod validate;
