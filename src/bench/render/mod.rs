//! The renderers: a [`Report`](super::Report) shown as a text table
//! (`Display`), JSON (`Serialize`, with its field list), CSV (the timeline's
//! rows) or an SVG image. Each only reads the report; none changes it, and
//! nothing before them in the pipeline knows they exist.

mod csv;
mod json;
mod svg;
mod text;

pub use csv::CSV_HEADER;
pub use json::{JSON_FIELDS, STAMP_JSON_FIELDS};
