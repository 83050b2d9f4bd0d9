//! The NVIDIA DOCA backend (feature `doca`): bindgen bindings to the SDK
//! ([`sys`]) and [`DocaDma`], a [`crate::DmaEngine`] on a BlueField's DMA
//! engine driven by a DOCA progress engine.
//!
//! UNTESTED: written against the DOCA 2.5+/3.x progress-engine API without
//! the SDK or hardware at hand (see docs/doca.md).

pub mod sys;

mod dma;

pub use dma::DocaDma;
