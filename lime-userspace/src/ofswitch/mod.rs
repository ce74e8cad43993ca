//! The OpenFlow 1.3 switch side (placeholder, see below).
pub mod translate;
