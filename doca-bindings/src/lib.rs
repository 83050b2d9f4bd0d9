//! Host/DPU transport: DMA-able memory regions, descriptor rings, doorbells and
//! the DMA engine (DOCA on a BlueField, memfd + memcpy + eventfd here).
//!
//! Not built yet (issue 5). This crate is a placeholder so the workspace has the
//! shape of the product.
