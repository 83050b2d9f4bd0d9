//! The eBPF runtime: DPDK's librte_bpf (docs/xdp.md says why: a JIT on
//! x86_64 and on arm64, the BlueField's cores, and a validator that bounds
//! every memory access and rejects loops at load).
//!
//! A program is loaded once per queue it runs on: each copy has its own
//! `flextoe_md` (an external variable whose address the loader writes into
//! the code), so the replicas never share it. The external functions a
//! program calls are plain `extern "C"` functions without a context
//! argument; they find the running copy's maps and frame through a
//! thread-local set for the duration of each run ([`Instance::run`]).
//! Each map function exists in [`MAX_MAPS`] copies, one per map index of a
//! program, so the validator checks each call's pointers against that
//! map's own key and value sizes.
//!
//! This is the only file of the hook with `unsafe`: the FFI calls and the
//! pointers the validated program hands back to the map functions.

use super::capture::CaptureRing;
use super::maps::Map;
use super::object::MAX_MAPS;
use super::program::{Md, Program, Runtime, WINDOW};
use dpdk_sys as sys;
use std::cell::Cell;
use std::ffi::{c_void, CString};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Arc;

/// Shortest frame `flextoe_adjust_head` leaves (an Ethernet header).
const MIN_FRAME: usize = 14;

/// What the external functions see of the running copy.
struct Run<'a> {
    maps: &'a [Arc<Map>],
    capture: &'a CaptureRing,
    replica: usize,
    window: *mut u8,
    md: *mut Md,
}

thread_local! {
    /// The copy running on this thread (null between runs).
    static CURRENT: Cell<*const Run<'static>> = const { Cell::new(std::ptr::null()) };
}

/// Calls `f` with the running copy; `u64::MAX` (-1 to the program) when
/// `f` fails or nothing runs.
fn with_run(f: impl FnOnce(&Run<'_>) -> Option<u64>) -> u64 {
    let run = CURRENT.with(|c| c.get());
    if run.is_null() {
        return u64::MAX;
    }
    // SAFETY: `Instance::run` points CURRENT at a `Run` on its stack for the
    // duration of the program's execution on this thread, and clears it
    // before that `Run` goes away; external functions are only called from
    // inside that execution.
    f(unsafe { &*run }).unwrap_or(u64::MAX)
}

/// Copies the program's key into a buffer of our own, so that a key and an
/// output value at overlapping addresses never alias a `&mut`.
#[inline(always)]
fn key_of(map: &Map, key: u64, buf: &mut [u8; 64]) {
    let n = map.def.key_size as usize;
    // SAFETY: the validator checked that `key` points at `key_size`
    // readable bytes (the argument's size in this function's xsym entry is
    // this map's key size); key_size <= 64 (`MapDef::validate`).
    buf[..n].copy_from_slice(unsafe { std::slice::from_raw_parts(key as *const u8, n) });
}

extern "C" fn map_lookup<const I: usize>(key: u64, out: u64, _: u64, _: u64, _: u64) -> u64 {
    with_run(|run| {
        let map = run.maps.get(I)?;
        let mut k = [0u8; 64];
        key_of(map, key, &mut k);
        // SAFETY: the validator checked that `out` points at `value_size`
        // writable bytes; nothing else refers to them during this call.
        let out =
            unsafe { std::slice::from_raw_parts_mut(out as *mut u8, map.def.value_size as usize) };
        map.lookup(run.replica, &k[..map.def.key_size as usize], out)
            .ok()
            .map(|_| 0)
    })
}

extern "C" fn map_update<const I: usize>(key: u64, value: u64, _: u64, _: u64, _: u64) -> u64 {
    with_run(|run| {
        let map = run.maps.get(I)?;
        let mut k = [0u8; 64];
        key_of(map, key, &mut k);
        // SAFETY: the validator checked that `value` points at
        // `value_size` readable bytes.
        let v =
            unsafe { std::slice::from_raw_parts(value as *const u8, map.def.value_size as usize) };
        let replica = (map.def.kind == super::maps::MapKind::PerReplica).then_some(run.replica);
        map.update(replica, &k[..map.def.key_size as usize], v)
            .ok()
            .map(|_| 0)
    })
}

extern "C" fn map_delete<const I: usize>(key: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    with_run(|run| {
        let map = run.maps.get(I)?;
        let mut k = [0u8; 64];
        key_of(map, key, &mut k);
        let replica = (map.def.kind == super::maps::MapKind::PerReplica).then_some(run.replica);
        map.delete(replica, &k[..map.def.key_size as usize])
            .ok()
            .map(|_| 0)
    })
}

extern "C" fn map_add<const I: usize>(key: u64, word: u64, delta: u64, _: u64, _: u64) -> u64 {
    with_run(|run| {
        let map = run.maps.get(I)?;
        let mut k = [0u8; 64];
        key_of(map, key, &mut k);
        map.add(run.replica, &k[..map.def.key_size as usize], word, delta)
            .ok()
            .map(|_| 0)
    })
}

extern "C" fn adjust_head(delta: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    with_run(|run| {
        // SAFETY: `window` and `md` point at the running copy's frame window
        // (WINDOW bytes) and metadata, lent by `Instance::run` for the
        // execution; the program itself is suspended in this call.
        let (window, md) = unsafe {
            (
                std::slice::from_raw_parts_mut(run.window, WINDOW),
                &mut *run.md,
            )
        };
        let len = (md.len as usize).min(WINDOW);
        let delta = delta as i64;
        let new_len = len as i64 - delta;
        if new_len < MIN_FRAME as i64 || new_len > WINDOW as i64 {
            return None;
        }
        if delta >= 0 {
            window.copy_within(delta as usize..len, 0);
        } else {
            let grow = delta.unsigned_abs() as usize;
            window.copy_within(0..len, grow);
            window[..grow].fill(0);
        }
        md.len = new_len as u32;
        Some(0)
    })
}

extern "C" fn capture(snaplen: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
    with_run(|run| {
        // SAFETY: as in `adjust_head`: the running copy's window and
        // metadata, lent for the execution.
        let (window, md) = unsafe { (std::slice::from_raw_parts(run.window, WINDOW), &*run.md) };
        let n = (md.len as usize).min(WINDOW).min(snaplen as usize);
        run.capture.push(&window[..n]).then_some(0)
    })
}

type Helper = extern "C" fn(u64, u64, u64, u64, u64) -> u64;

/// DPDK 22.11's x86_64 JIT calls external functions with the stack
/// misaligned by 8 half the time (fixed upstream in 2026, commit
/// 6d0e6b5e3a "bpf: fix x86 call stack alignment for external calls");
/// Rust code may then fault on an aligned SSE store. Each function the
/// program may call is entered through this trampoline, which realigns
/// the stack, calls it with the same arguments and restores the stack.
#[cfg(target_arch = "x86_64")]
macro_rules! aligned {
    ($name:ident, $target:path) => {
        #[unsafe(naked)]
        extern "C" fn $name(_: u64, _: u64, _: u64, _: u64, _: u64) -> u64 {
            std::arch::naked_asm!(
                "push rbp",
                "mov rbp, rsp",
                "and rsp, -16",
                "call {f}",
                "mov rsp, rbp",
                "pop rbp",
                "ret",
                f = sym $target,
            )
        }
    };
}

/// Other targets' JITs keep the stack aligned (arm64 must): no trampoline.
#[cfg(not(target_arch = "x86_64"))]
macro_rules! aligned {
    ($name:ident, $target:path) => {
        extern "C" fn $name(a: u64, b: u64, c: u64, d: u64, e: u64) -> u64 {
            $target(a, b, c, d, e)
        }
    };
}

macro_rules! per_map {
    ($table:ident, $f:ident, $($i:literal $name:ident),*) => {
        $( aligned!($name, $f::<$i>); )*
        const $table: [Helper; MAX_MAPS] = [$($name),*];
    };
}
per_map!(LOOKUP, map_lookup, 0 lk0, 1 lk1, 2 lk2, 3 lk3, 4 lk4, 5 lk5, 6 lk6, 7 lk7, 8 lk8,
    9 lk9, 10 lk10, 11 lk11, 12 lk12, 13 lk13, 14 lk14, 15 lk15);
per_map!(UPDATE, map_update, 0 up0, 1 up1, 2 up2, 3 up3, 4 up4, 5 up5, 6 up6, 7 up7, 8 up8,
    9 up9, 10 up10, 11 up11, 12 up12, 13 up13, 14 up14, 15 up15);
per_map!(DELETE, map_delete, 0 de0, 1 de1, 2 de2, 3 de3, 4 de4, 5 de5, 6 de6, 7 de7, 8 de8,
    9 de9, 10 de10, 11 de11, 12 de12, 13 de13, 14 de14, 15 de15);
per_map!(ADD, map_add, 0 ad0, 1 ad1, 2 ad2, 3 ad3, 4 ad4, 5 ad5, 6 ad6, 7 ad7, 8 ad8,
    9 ad9, 10 ad10, 11 ad11, 12 ad12, 13 ad13, 14 ad14, 15 ad15);
aligned!(adjust_head_aligned, adjust_head);
aligned!(capture_aligned, capture);

fn raw() -> sys::rte_bpf_arg {
    sys::rte_bpf_arg {
        type_: sys::RTE_BPF_ARG_RAW,
        size: 8,
        buf_size: 0,
    }
}

fn ptr(size: usize) -> sys::rte_bpf_arg {
    sys::rte_bpf_arg {
        type_: sys::RTE_BPF_ARG_PTR,
        size,
        buf_size: 0,
    }
}

fn func(name: &CString, f: Helper, args: &[sys::rte_bpf_arg]) -> sys::rte_bpf_xsym {
    let mut a = [sys::rte_bpf_arg::default(); 5];
    a[..args.len()].copy_from_slice(args);
    sys::rte_bpf_xsym {
        name: name.as_ptr(),
        type_: sys::RTE_BPF_XTYPE_FUNC,
        __bindgen_anon_1: sys::rte_bpf_xsym__bindgen_ty_1 {
            func: sys::rte_bpf_xsym__bindgen_ty_1__bindgen_ty_1 {
                // SAFETY: the same ABI (five u64 in, u64 out, C calling
                // convention); bindgen spells the pointer `unsafe`.
                val: Some(unsafe {
                    std::mem::transmute::<
                        Helper,
                        unsafe extern "C" fn(u64, u64, u64, u64, u64) -> u64,
                    >(f)
                }),
                nb_args: args.len() as u32,
                args: a,
                ret: raw(),
            },
        },
    }
}

/// One loaded copy of a program.
pub struct Instance {
    bpf: NonNull<sys::rte_bpf>,
    jit: Option<unsafe extern "C" fn(*mut c_void) -> u64>,
    /// `flextoe_md` of this copy (its address is in the code).
    md: Box<Md>,
    maps: Vec<Arc<Map>>,
    capture: Arc<CaptureRing>,
}

// SAFETY: an `rte_bpf` is immutable after load and its code uses only its
// argument, its stack and the memory it was given (`md`, owned here); the
// instance moves between threads as a whole and runs on one at a time
// (`run` takes `&mut self`).
unsafe impl Send for Instance {}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("jit", &self.jit.is_some())
            .field("maps", &self.maps.len())
            .finish()
    }
}

impl Instance {
    /// Loads section `section` of the object at `path`, with `maps` (in
    /// the object's order: map i is the one whose functions are `M_*` of
    /// the i-th definition). The object was checked by `object::inspect`.
    pub fn load(
        path: &Path,
        section: &str,
        map_names: &[String],
        maps: Vec<Arc<Map>>,
        capture: Arc<CaptureRing>,
    ) -> Result<Instance, String> {
        let mut md = Box::new(Md::default());
        let cname = |s: &str| CString::new(s).map_err(|_| format!("a NUL in {s:?}"));
        let md_name = cname("flextoe_md")?;
        let adjust_name = cname("flextoe_adjust_head")?;
        let capture_name = cname("flextoe_capture")?;
        let mut names = Vec::new();
        for (i, (name, map)) in map_names.iter().zip(&maps).enumerate().take(MAX_MAPS) {
            let k = ptr(map.def.key_size as usize);
            let v = ptr(map.def.value_size as usize);
            names.push((cname(&format!("{name}_lookup"))?, LOOKUP[i], vec![k, v]));
            names.push((cname(&format!("{name}_update"))?, UPDATE[i], vec![k, v]));
            names.push((cname(&format!("{name}_delete"))?, DELETE[i], vec![k]));
            names.push((
                cname(&format!("{name}_add"))?,
                ADD[i],
                vec![k, raw(), raw()],
            ));
        }
        let mut xsyms = vec![
            sys::rte_bpf_xsym {
                name: md_name.as_ptr(),
                type_: sys::RTE_BPF_XTYPE_VAR,
                __bindgen_anon_1: sys::rte_bpf_xsym__bindgen_ty_1 {
                    var: sys::rte_bpf_xsym__bindgen_ty_1__bindgen_ty_2 {
                        val: (&mut *md as *mut Md).cast(),
                        desc: ptr(std::mem::size_of::<Md>()),
                    },
                },
            },
            func(&adjust_name, adjust_head_aligned, &[raw()]),
            func(&capture_name, capture_aligned, &[raw()]),
        ];
        for (name, f, args) in &names {
            xsyms.push(func(name, *f, args));
        }
        let prm = sys::rte_bpf_prm {
            ins: std::ptr::null(),
            nb_ins: 0,
            xsym: xsyms.as_ptr(),
            nb_xsym: xsyms.len() as u32,
            prog_arg: ptr(WINDOW),
        };
        let file = cname(&path.to_string_lossy())?;
        let sec = cname(section)?;
        let (bpf, log) = with_captured_log(|| {
            // SAFETY: `prm`, the xsym table and every name it points at
            // live until the call returns; the library copies what it
            // keeps (its own code and xsym copy).
            unsafe { sys::rte_bpf_elf_load(&prm, file.as_ptr(), sec.as_ptr()) }
        });
        let Some(bpf) = NonNull::new(bpf) else {
            // SAFETY: reads the calling thread's rte_errno.
            let errno = unsafe { sys::dpdk_sys_errno() };
            return Err(refusal(errno, &log));
        };
        let mut jit = sys::rte_bpf_jit::default();
        // SAFETY: `bpf` was just loaded; `jit` is a valid out parameter.
        let jitted = unsafe { sys::rte_bpf_get_jit(bpf.as_ptr(), &mut jit) } == 0;
        Ok(Instance {
            bpf,
            jit: if jitted { jit.func } else { None },
            md,
            maps,
            capture,
        })
    }

    /// This copy without its machine code: runs in the interpreter (to
    /// measure it, or where no JIT exists).
    pub fn interpreted(mut self) -> Instance {
        self.jit = None;
        self
    }

    /// True when the program runs as machine code (else interpreted).
    pub fn jitted(&self) -> bool {
        self.jit.is_some()
    }

    /// Runs the program on `window` (the frame and its spare room) with
    /// `md`; returns its verdict and the metadata it left.
    pub fn run(&mut self, window: &mut [u8], md: Md) -> (u64, Md) {
        assert_eq!(window.len(), WINDOW, "a program's window is WINDOW bytes");
        *self.md = md;
        let run = Run {
            maps: &self.maps,
            capture: &self.capture,
            replica: md.replica as usize,
            window: window.as_mut_ptr(),
            md: &mut *self.md,
        };
        CURRENT.with(|c| c.set((&run as *const Run<'_>).cast()));
        let arg = window.as_mut_ptr().cast::<c_void>();
        let verdict = match self.jit {
            // SAFETY: the validated program reads and writes only `arg`'s
            // WINDOW bytes, `md` and its stack, and calls only the
            // functions of its xsym table; `run` outlives the call.
            Some(f) => unsafe { f(arg) },
            // SAFETY: as above, interpreted.
            None => unsafe { sys::rte_bpf_exec(self.bpf.as_ptr(), arg) },
        };
        CURRENT.with(|c| c.set(std::ptr::null()));
        (verdict, *self.md)
    }
}

impl Program for Instance {
    fn run(&mut self, window: &mut [u8], md: Md) -> (u64, Md) {
        Instance::run(self, window, md)
    }

    fn jitted(&self) -> bool {
        Instance::jitted(self)
    }
}

/// DPDK's librte_bpf.
#[derive(Debug, Default)]
pub struct RteBpf;

impl Runtime for RteBpf {
    fn load(
        &self,
        path: &Path,
        section: &str,
        map_names: &[String],
        maps: Vec<Arc<Map>>,
        capture: Arc<CaptureRing>,
    ) -> Result<Box<dyn Program>, String> {
        Ok(Box::new(Instance::load(
            path, section, map_names, maps, capture,
        )?))
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        // SAFETY: loaded by `rte_bpf_elf_load`, destroyed once; no run is
        // in progress (`&mut self`).
        unsafe { sys::rte_bpf_destroy(self.bpf.as_ptr()) };
    }
}

/// Why the library refused a program: its errno and the validator's own
/// lines from DPDK's log.
fn refusal(errno: i32, log: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let what = match errno {
        libc::EINVAL => "refused by the validator",
        libc::ENOENT => "an unknown external name",
        libc::ENOMEM => "out of memory",
        _ => "refused",
    };
    if lines.is_empty() {
        format!("{what} (errno {errno})")
    } else {
        format!("{what}: {}", lines.join("; "))
    }
}

/// Runs `f` with DPDK's log going to a memory stream; returns what it
/// logged. The stream is process-wide: other threads' DPDK messages of
/// that moment land here too.
fn with_captured_log<T>(f: impl FnOnce() -> T) -> (T, String) {
    // One capture at a time: a second would close the first one's stream
    // under it.
    static CAPTURE: parking_lot::Mutex<()> = parking_lot::Mutex::new(());
    let _one = CAPTURE.lock();
    let mut buf: *mut libc::c_char = std::ptr::null_mut();
    let mut size: libc::size_t = 0;
    // SAFETY: `buf` and `size` outlive the stream (closed below).
    let stream = unsafe { libc::open_memstream(&mut buf, &mut size) };
    if stream.is_null() {
        return (f(), String::new());
    }
    // SAFETY: reads DPDK's current log stream pointer.
    let previous = unsafe { sys::rte_log_get_stream() };
    // SAFETY: `stream` is a valid FILE until fclose below.
    unsafe { sys::rte_openlog_stream(stream.cast()) };
    let out = f();
    // SAFETY: restores the earlier stream (NULL means stderr to DPDK), then
    // closes ours, which makes `buf`/`size` valid; `buf` is freed once.
    let text = unsafe {
        sys::rte_openlog_stream(previous);
        libc::fclose(stream);
        let text = if buf.is_null() {
            String::new()
        } else {
            String::from_utf8_lossy(std::slice::from_raw_parts(buf.cast::<u8>(), size)).into_owned()
        };
        libc::free(buf.cast());
        text
    };
    (out, text)
}
