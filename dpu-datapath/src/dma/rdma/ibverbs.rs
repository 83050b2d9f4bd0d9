//! The verbs layer over rdma-core (rdma-sys), feature `rdma`: one device
//! context, protection domain, completion queue and RC queue pair, memory
//! registration, and [`Verbs`] for [`super::RdmaDma`]. Bringing the queue
//! pair up needs the host's endpoint (queue pair number, LID, GID), which
//! the host side sends at registration; that exchange and the host-side
//! registration of the application's region are not built yet. Untested
//! here: this machine has no RDMA device (docs/dma.md).

use super::verbs::{LocalData, RdmaOpcode, Verbs, WorkCompletion, WorkRequest};
use rdma_sys::*;
use std::ffi::CStr;
use std::ptr;

/// What the peer needs to connect its queue pair to ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QpEndpoint {
    pub qp_num: u32,
    pub lid: u16,
    pub gid: [u8; 16],
    pub psn: u32,
}

/// A registered memory region (keys for local and remote access).
#[derive(Debug)]
pub struct MemoryRegion {
    mr: *mut ibv_mr,
    pub lkey: u32,
    pub rkey: u32,
}

// SAFETY: an `ibv_mr` handle may be used and deregistered from any thread.
unsafe impl Send for MemoryRegion {}

impl Drop for MemoryRegion {
    fn drop(&mut self) {
        // SAFETY: `mr` came from `ibv_reg_mr` and is deregistered once.
        unsafe { ibv_dereg_mr(self.mr) };
    }
}

/// An opened RDMA device with one RC queue pair.
pub struct IbVerbs {
    ctx: *mut ibv_context,
    pd: *mut ibv_pd,
    cq: *mut ibv_cq,
    qp: *mut ibv_qp,
    port: u8,
    max_send_wr: usize,
    wc: Vec<ibv_wc>,
}

// SAFETY: the verbs objects are used by one thread at a time (the engine
// that owns them); rdma-core allows that from any thread.
unsafe impl Send for IbVerbs {}

impl std::fmt::Debug for IbVerbs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IbVerbs")
            .field("port", &self.port)
            .field("max_send_wr", &self.max_send_wr)
            .finish()
    }
}

/// Names of the RDMA devices present (empty: none).
pub fn devices() -> Vec<String> {
    let mut n = 0;
    // SAFETY: `n` is a valid out-pointer; the list is freed below.
    let list = unsafe { ibv_get_device_list(&mut n) };
    if list.is_null() {
        return Vec::new();
    }
    let names = (0..n.max(0) as usize)
        .map(|i| {
            // SAFETY: the list holds `n` device pointers, each with a
            // NUL-terminated name, valid until the list is freed.
            unsafe { CStr::from_ptr(ibv_get_device_name(*list.add(i))) }
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    // SAFETY: from `ibv_get_device_list`, freed once.
    unsafe { ibv_free_device_list(list) };
    names
}

impl IbVerbs {
    /// Opens `device` (the first one when None) on `port` with a send
    /// queue of `max_send_wr` entries. A clear error, never a crash, when
    /// there is no such device.
    pub fn open(device: Option<&str>, port: u8, max_send_wr: u32) -> Result<Self, String> {
        let mut n = 0;
        // SAFETY: as in `devices`.
        let list = unsafe { ibv_get_device_list(&mut n) };
        if list.is_null() || n <= 0 {
            if !list.is_null() {
                // SAFETY: from `ibv_get_device_list`, freed once.
                unsafe { ibv_free_device_list(list) };
            }
            return Err("no RDMA device found (ibv_get_device_list returned none)".into());
        }
        let mut chosen = ptr::null_mut();
        for i in 0..n as usize {
            // SAFETY: `i < n`, entries valid until the list is freed.
            let dev = unsafe { *list.add(i) };
            // SAFETY: a device of the list has a NUL-terminated name.
            let name = unsafe { CStr::from_ptr(ibv_get_device_name(dev)) }.to_string_lossy();
            if device.is_none_or(|d| d == name) {
                chosen = dev;
                break;
            }
        }
        let ctx = if chosen.is_null() {
            ptr::null_mut()
        } else {
            // SAFETY: a device from the list, opened before it is freed.
            unsafe { ibv_open_device(chosen) }
        };
        // SAFETY: from `ibv_get_device_list`, freed once.
        unsafe { ibv_free_device_list(list) };
        if ctx.is_null() {
            return Err(format!(
                "RDMA device {} not found or could not be opened",
                device.unwrap_or("(first)")
            ));
        }
        let mut this = Self {
            ctx,
            pd: ptr::null_mut(),
            cq: ptr::null_mut(),
            qp: ptr::null_mut(),
            port,
            max_send_wr: max_send_wr as usize,
            wc: Vec::new(),
        };
        // SAFETY: `ctx` is an open device context.
        this.pd = unsafe { ibv_alloc_pd(ctx) };
        if this.pd.is_null() {
            return Err("ibv_alloc_pd failed".into());
        }
        // SAFETY: as above; no completion channel, vector 0.
        this.cq =
            unsafe { ibv_create_cq(ctx, max_send_wr as i32, ptr::null_mut(), ptr::null_mut(), 0) };
        if this.cq.is_null() {
            return Err("ibv_create_cq failed".into());
        }
        // SAFETY: every field is then set or valid as zero (no SRQ).
        let mut init: ibv_qp_init_attr = unsafe { std::mem::zeroed() };
        init.send_cq = this.cq;
        init.recv_cq = this.cq;
        init.qp_type = ibv_qp_type::IBV_QPT_RC;
        init.sq_sig_all = 1;
        init.cap.max_send_wr = max_send_wr;
        init.cap.max_recv_wr = 1;
        init.cap.max_send_sge = 1;
        init.cap.max_recv_sge = 1;
        init.cap.max_inline_data = 8;
        // SAFETY: `pd` and `init` are valid.
        this.qp = unsafe { ibv_create_qp(this.pd, &mut init) };
        if this.qp.is_null() {
            return Err("ibv_create_qp (RC) failed".into());
        }
        this.wc = Vec::with_capacity(max_send_wr as usize);
        Ok(this)
    }

    /// Our endpoint, for the peer.
    pub fn endpoint(&self, psn: u32) -> Result<QpEndpoint, String> {
        // SAFETY: zero is a valid `ibv_port_attr` to be filled in.
        let mut port: ibv_port_attr = unsafe { std::mem::zeroed() };
        // SAFETY: `ctx` is open, `port` a valid out-pointer.
        if unsafe { ___ibv_query_port(self.ctx, self.port, &mut port) } != 0 {
            return Err(format!("ibv_query_port {} failed", self.port));
        }
        // SAFETY: zero is a valid GID to be filled in.
        let mut gid: ibv_gid = unsafe { std::mem::zeroed() };
        // SAFETY: as above, GID index 0.
        if unsafe { ibv_query_gid(self.ctx, self.port, 0, &mut gid) } != 0 {
            return Err("ibv_query_gid failed".into());
        }
        Ok(QpEndpoint {
            // SAFETY: `qp` was created in `open`.
            qp_num: unsafe { (*self.qp).qp_num },
            lid: port.lid,
            // SAFETY: every bit pattern of the union is valid bytes.
            gid: unsafe { gid.raw },
            psn,
        })
    }

    /// Brings the queue pair to RTS towards `remote` (INIT, RTR, RTS).
    pub fn connect(&mut self, local_psn: u32, remote: &QpEndpoint) -> Result<(), String> {
        let access = ibv_access_flags::IBV_ACCESS_LOCAL_WRITE
            | ibv_access_flags::IBV_ACCESS_REMOTE_WRITE
            | ibv_access_flags::IBV_ACCESS_REMOTE_READ;
        // SAFETY: zero is a valid `ibv_qp_attr`; fields set per transition.
        let mut attr: ibv_qp_attr = unsafe { std::mem::zeroed() };
        attr.qp_state = ibv_qp_state::IBV_QPS_INIT;
        attr.pkey_index = 0;
        attr.port_num = self.port;
        attr.qp_access_flags = access.0;
        let mask = ibv_qp_attr_mask::IBV_QP_STATE
            | ibv_qp_attr_mask::IBV_QP_PKEY_INDEX
            | ibv_qp_attr_mask::IBV_QP_PORT
            | ibv_qp_attr_mask::IBV_QP_ACCESS_FLAGS;
        self.modify(&mut attr, mask, "INIT")?;

        // SAFETY: as above.
        let mut attr: ibv_qp_attr = unsafe { std::mem::zeroed() };
        attr.qp_state = ibv_qp_state::IBV_QPS_RTR;
        attr.path_mtu = ibv_mtu::IBV_MTU_1024;
        attr.dest_qp_num = remote.qp_num;
        attr.rq_psn = remote.psn;
        attr.max_dest_rd_atomic = 1;
        attr.min_rnr_timer = 12;
        attr.ah_attr.dlid = remote.lid;
        attr.ah_attr.port_num = self.port;
        if remote.gid != [0; 16] {
            attr.ah_attr.is_global = 1;
            attr.ah_attr.grh.dgid = ibv_gid { raw: remote.gid };
            attr.ah_attr.grh.hop_limit = 1;
        }
        let mask = ibv_qp_attr_mask::IBV_QP_STATE
            | ibv_qp_attr_mask::IBV_QP_AV
            | ibv_qp_attr_mask::IBV_QP_PATH_MTU
            | ibv_qp_attr_mask::IBV_QP_DEST_QPN
            | ibv_qp_attr_mask::IBV_QP_RQ_PSN
            | ibv_qp_attr_mask::IBV_QP_MAX_DEST_RD_ATOMIC
            | ibv_qp_attr_mask::IBV_QP_MIN_RNR_TIMER;
        self.modify(&mut attr, mask, "RTR")?;

        // SAFETY: as above.
        let mut attr: ibv_qp_attr = unsafe { std::mem::zeroed() };
        attr.qp_state = ibv_qp_state::IBV_QPS_RTS;
        attr.sq_psn = local_psn;
        attr.timeout = 14;
        attr.retry_cnt = 7;
        attr.rnr_retry = 7;
        attr.max_rd_atomic = 1;
        let mask = ibv_qp_attr_mask::IBV_QP_STATE
            | ibv_qp_attr_mask::IBV_QP_TIMEOUT
            | ibv_qp_attr_mask::IBV_QP_RETRY_CNT
            | ibv_qp_attr_mask::IBV_QP_RNR_RETRY
            | ibv_qp_attr_mask::IBV_QP_SQ_PSN
            | ibv_qp_attr_mask::IBV_QP_MAX_QP_RD_ATOMIC;
        self.modify(&mut attr, mask, "RTS")
    }

    fn modify(
        &mut self,
        attr: &mut ibv_qp_attr,
        mask: ibv_qp_attr_mask,
        to: &str,
    ) -> Result<(), String> {
        // SAFETY: `qp` is ours, `attr` valid for the fields `mask` names.
        let rc = unsafe { ibv_modify_qp(self.qp, attr, mask.0 as i32) };
        if rc != 0 {
            return Err(format!("ibv_modify_qp to {to} failed: {rc}"));
        }
        Ok(())
    }

    /// Registers `len` bytes at `addr` for local use, and for remote reads
    /// and writes when `remote` (the DPU's own memory needs local only).
    ///
    /// # Safety
    /// The memory must stay valid until the region is dropped.
    pub unsafe fn register(
        &self,
        addr: *mut u8,
        len: usize,
        remote: bool,
    ) -> Result<MemoryRegion, String> {
        let mut access = ibv_access_flags::IBV_ACCESS_LOCAL_WRITE;
        if remote {
            access |= ibv_access_flags::IBV_ACCESS_REMOTE_WRITE
                | ibv_access_flags::IBV_ACCESS_REMOTE_READ;
        }
        // SAFETY: `pd` is ours; the caller keeps the memory valid.
        let mr = unsafe { ibv_reg_mr(self.pd, addr.cast(), len, access.0 as i32) };
        if mr.is_null() {
            return Err(format!("ibv_reg_mr of {len} bytes failed"));
        }
        // SAFETY: a registered region's keys are readable.
        let (lkey, rkey) = unsafe { ((*mr).lkey, (*mr).rkey) };
        Ok(MemoryRegion { mr, lkey, rkey })
    }
}

impl Verbs for IbVerbs {
    fn post_send(&mut self, wr: &WorkRequest) -> Result<(), String> {
        let mut sge = ibv_sge {
            addr: 0,
            length: 0,
            lkey: 0,
        };
        let mut inline = [0u8; 8];
        // SAFETY: zero is a valid `ibv_send_wr`; the fields used are set.
        let mut send: ibv_send_wr = unsafe { std::mem::zeroed() };
        send.wr_id = wr.wr_id;
        send.num_sge = 1;
        send.opcode = match wr.opcode {
            RdmaOpcode::Write => ibv_wr_opcode::IBV_WR_RDMA_WRITE,
            RdmaOpcode::Read => ibv_wr_opcode::IBV_WR_RDMA_READ,
        };
        let mut flags = ibv_send_flags::IBV_SEND_SIGNALED;
        match wr.local {
            LocalData::Registered { addr, len, lkey } => {
                sge.addr = addr;
                sge.length = len;
                sge.lkey = lkey;
            }
            LocalData::Inline { bytes, len } => {
                inline = bytes;
                sge.addr = inline.as_ptr() as u64;
                sge.length = u32::from(len);
                flags |= ibv_send_flags::IBV_SEND_INLINE;
            }
        }
        send.send_flags = flags.0;
        send.sg_list = &mut sge;
        send.wr.rdma.remote_addr = wr.remote_addr;
        send.wr.rdma.rkey = wr.rkey;
        let mut bad = ptr::null_mut();
        // SAFETY: `qp` is ours; `send`, `sge` and the inline bytes live for
        // the call (inline data is copied by it; registered memory is kept
        // alive by the engine until the completion).
        let rc = unsafe { ibv_post_send(self.qp, &mut send, &mut bad) };
        let _ = inline;
        if rc != 0 {
            return Err(format!("ibv_post_send failed: {rc}"));
        }
        Ok(())
    }

    fn poll_cq(&mut self, out: &mut Vec<WorkCompletion>, max: usize) -> usize {
        let max = max.min(self.wc.capacity()).max(1);
        self.wc.clear();
        // SAFETY: `cq` is ours; the vector has room for `max` entries,
        // which `ibv_poll_cq` fills (and we then expose, `n` of them).
        let n = unsafe {
            let n = ibv_poll_cq(self.cq, max as i32, self.wc.as_mut_ptr());
            if n > 0 {
                self.wc.set_len(n as usize);
            }
            n
        };
        for wc in &self.wc {
            out.push(WorkCompletion {
                wr_id: wc.wr_id,
                status: if wc.status == ibv_wc_status::IBV_WC_SUCCESS {
                    Ok(())
                } else {
                    Err(wc.status)
                },
            });
        }
        n.max(0) as usize
    }

    fn max_send_wr(&self) -> usize {
        self.max_send_wr
    }
}

impl Drop for IbVerbs {
    fn drop(&mut self) {
        // SAFETY: each object was created in `open` (null when it failed
        // before), destroyed once, in reverse order.
        unsafe {
            if !self.qp.is_null() {
                ibv_destroy_qp(self.qp);
            }
            if !self.cq.is_null() {
                ibv_destroy_cq(self.cq);
            }
            if !self.pd.is_null() {
                ibv_dealloc_pd(self.pd);
            }
            if !self.ctx.is_null() {
                ibv_close_device(self.ctx);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Where there is no device, opening says so (and does not crash);
    /// where there is one, the queue pair is created and has an endpoint.
    #[test]
    fn open_reports_a_missing_device_or_creates_the_queue_pair() {
        let found = devices();
        match IbVerbs::open(None, 1, 64) {
            Err(e) => {
                assert!(found.is_empty(), "devices {found:?} but open failed: {e}");
                assert!(e.contains("no RDMA device"), "{e}");
                println!("no RDMA device here: {e}");
            }
            Ok(v) => {
                assert!(!found.is_empty());
                let ep = v.endpoint(1).expect("endpoint");
                assert_ne!(ep.qp_num, 0);
            }
        }
        let missing = IbVerbs::open(Some("no-such-rdma-device"), 1, 64).unwrap_err();
        assert!(
            missing.contains("no RDMA device") || missing.contains("not found"),
            "{missing}"
        );
    }
}
