//! What the RDMA engine needs from the verbs layer, as plain data: post a
//! work request on the send queue of an RC queue pair, poll the completion
//! queue. `ibverbs.rs` (feature `rdma`) implements it over rdma-core; the
//! tests implement it with emulated completions.

/// An RDMA operation on the connection to the host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RdmaOpcode {
    /// Local bytes -> host memory.
    Write,
    /// Host memory -> local bytes.
    Read,
}

/// Where the local bytes of a work request are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LocalData {
    /// Registered local memory: address, length, its memory region's key.
    Registered { addr: u64, len: u32, lkey: u32 },
    /// Up to 8 bytes carried in the work request itself (`IBV_SEND_INLINE`:
    /// no registration; a ring index store).
    Inline { bytes: [u8; 8], len: u8 },
}

impl LocalData {
    pub fn len(&self) -> usize {
        match *self {
            LocalData::Registered { len, .. } => len as usize,
            LocalData::Inline { len, .. } => len as usize,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One signalled work request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkRequest {
    pub wr_id: u64,
    pub opcode: RdmaOpcode,
    pub local: LocalData,
    /// Host (remote) virtual address and the key of its memory region.
    pub remote_addr: u64,
    pub rkey: u32,
}

/// A completion from the completion queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkCompletion {
    pub wr_id: u64,
    /// `IBV_WC_SUCCESS`, or the failure (`ibv_wc_status` value).
    pub status: Result<(), u32>,
}

/// The verbs the engine uses.
pub trait Verbs: Send {
    /// Posts one work request; `Err` with a reason when the queue pair
    /// refuses it (queue full, or in error).
    fn post_send(&mut self, wr: &WorkRequest) -> Result<(), String>;
    /// Appends up to `max` completions to `out`; how many.
    fn poll_cq(&mut self, out: &mut Vec<WorkCompletion>, max: usize) -> usize;
    /// Work requests the send queue holds at most.
    fn max_send_wr(&self) -> usize;
}
