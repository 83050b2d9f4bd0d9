//! Host/DPU transport: DMA-able memory regions, descriptor rings, doorbells and
//! the DMA engine (DOCA on a BlueField, memfd + memcpy + eventfd here), and the
//! host interface ABI both sides share.

pub mod abi;
