//! Host/DPU transport: DMA-able memory regions, descriptor rings, doorbells and
//! the DMA engine (DOCA on a BlueField, memfd + memcpy + eventfd here), and the
//! host interface ABI both sides share.
//!
//! The wire-level contract is documented in `docs/hostif-abi.md`; the DOCA
//! mapping (feature `doca`) in `docs/doca.md`.

pub mod abi;
pub mod control;
pub mod dma;
pub mod doorbell;
pub mod fdpass;
pub mod region;
pub mod ring;

#[cfg(feature = "doca")]
pub mod doca;

pub use dma::{DmaCompletion, DmaEngine, DmaError, DmaJob, MemcpyDma};
pub use doorbell::Doorbell;
pub use region::{OutOfBounds, Region};
pub use ring::{RingConsumer, RingError, RingProducer};
