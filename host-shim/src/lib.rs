//! `libtoe`: the thin host shim through which applications reach the DPU.
//!
//! Not built yet: the host interface (issue 5) maps the engine's per-connection
//! RX/TX buffers (`dpu_datapath::app`) onto DMA rings. Until then this crate is
//! an empty placeholder so the workspace has the shape of the product.
