pub mod doctor;
pub mod image;
pub mod serve;
pub mod validate;
