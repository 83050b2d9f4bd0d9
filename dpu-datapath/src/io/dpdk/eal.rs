//! The DPDK environment abstraction layer (EAL): its arguments and its one init per
//! process.
//!
//! `rte_eal_init` can run only once per process, even after it fails. So the first
//! result, `Ok` or `Err`, is kept and returned again to later callers that pass the
//! same arguments; later callers with different arguments get an `EALREADY` error.
//! EAL pins the calling thread to the main lcore's CPU and starts one sleeping thread
//! per other lcore (restrict them with `-l` in `port.dpdk.eal_args`).

use std::ffi::{c_char, c_int, CString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use pipeline_config::Dpdk;

use super::error::{DpdkError, EALREADY, EINVAL};

/// `argv[0]` given to EAL.
const PROGRAM: &str = "flextoe-dpu";

/// Debian's plugin directory, used when the headers' `RTE_EAL_PMD_PATH` is empty.
const FALLBACK_PMD_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/dpdk/pmds-23.0",
    "/usr/lib/aarch64-linux-gnu/dpdk/pmds-23.0",
];

/// Proof that EAL is initialised; required to open ports.
#[derive(Debug)]
pub struct Eal {
    args: Vec<String>,
}

static EAL: OnceLock<Result<Eal, DpdkError>> = OnceLock::new();

impl Eal {
    /// The full argument list EAL was started with (`argv[0]` first).
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// Ids of the ethdev ports EAL probed (vdevs and allowed PCI devices).
    pub fn ports(&self) -> Vec<u16> {
        let mut ports = Vec::new();
        // SAFETY: EAL is initialised (`self` exists); rte_eth_find_next only reads the
        // ethdev table and returns RTE_MAX_ETHPORTS when there is no next port.
        let mut id = unsafe { dpdk_sys::rte_eth_find_next(0) };
        while u32::from(id) < dpdk_sys::RTE_MAX_ETHPORTS {
            ports.push(id);
            // SAFETY: as above.
            id = unsafe { dpdk_sys::rte_eth_find_next(id + 1) };
        }
        ports
    }
}

/// The driver plugins EAL must load for `cfg` (`-d` arguments), as found on disk.
///
/// Debian ships the PMDs as shared plugins under `RTE_EAL_PMD_PATH`. EAL also loads
/// that whole directory by itself; naming the two we rely on (the ring mempool driver,
/// and the TAP PMD when a `net_tap` vdev is configured) makes a missing package fail
/// loudly in EAL init instead of as a missing port later.
pub fn pmd_plugins(cfg: &Dpdk) -> Vec<PathBuf> {
    let dir = [dpdk_sys::pmd_dir()]
        .into_iter()
        .chain(FALLBACK_PMD_DIRS.iter().copied())
        .map(Path::new)
        .find(|dir| !dir.as_os_str().is_empty() && dir.is_dir());
    let Some(dir) = dir else {
        return Vec::new();
    };
    let mut names = vec!["librte_mempool_ring.so"];
    if cfg.vdevs.iter().any(|v| v.starts_with("net_tap")) {
        names.push("librte_net_tap.so");
    }
    names
        .into_iter()
        .map(|name| dir.join(name))
        .filter(|path| path.exists())
        .collect()
}

fn has_option(args: &[String], name: &str) -> bool {
    args.iter()
        .any(|a| a == name || a.strip_prefix(name).is_some_and(|r| r.starts_with('=')))
}

/// The EAL argument list for `cfg`, `argv[0]` included:
/// `--proc-type=primary --no-shconf --file-prefix=ftoe-<pid>`, `--no-huge -m <memory_mb>`
/// when `no_huge`, `-d <plugin>` per [`pmd_plugins`], `--vdev=<v>` per vdev, `-a <pci>`
/// per allow-list entry, then `eal_args` verbatim. Defaults of ours that `eal_args` sets
/// itself (`--proc-type`, `--file-prefix`, `-m`) are left out.
pub fn eal_args(cfg: &Dpdk) -> Vec<String> {
    let extra = &cfg.eal_args;
    let mut args = vec![PROGRAM.to_owned()];
    if !has_option(extra, "--proc-type") {
        args.push("--proc-type=primary".to_owned());
    }
    args.push("--no-shconf".to_owned());
    if !has_option(extra, "--file-prefix") {
        args.push(format!("--file-prefix=ftoe-{}", std::process::id()));
    }
    if cfg.no_huge {
        args.push("--no-huge".to_owned());
        if !has_option(extra, "-m") {
            args.push("-m".to_owned());
            args.push(cfg.memory_mb.to_string());
        }
    } else if !has_option(extra, "--huge-unlink") {
        // Unlink each hugepage file once mapped: nothing is left in the
        // hugetlbfs mount when the process dies, even by SIGKILL.
        args.push("--huge-unlink=always".to_owned());
    }
    for plugin in pmd_plugins(cfg) {
        args.push("-d".to_owned());
        args.push(plugin.display().to_string());
    }
    for vdev in &cfg.vdevs {
        args.push(format!("--vdev={vdev}"));
    }
    for pci in &cfg.allow {
        args.push("-a".to_owned());
        args.push(pci.clone());
    }
    args.extend(extra.iter().cloned());
    args
}

/// Initialises EAL from `cfg` (see [`eal_args`]); once per process.
pub fn init_eal(cfg: &Dpdk) -> Result<&'static Eal, DpdkError> {
    init_eal_with_args(eal_args(cfg))
}

/// Initialises EAL with exactly `args` (`argv[0]` first); once per process.
pub fn init_eal_with_args(args: Vec<String>) -> Result<&'static Eal, DpdkError> {
    let mut first_args = None;
    let result = EAL.get_or_init(|| {
        first_args = Some(args.clone());
        run_eal_init(args.clone())
    });
    match result {
        Ok(eal) if first_args.is_none() && eal.args != args => Err(DpdkError::invalid(
            "rte_eal_init",
            EALREADY,
            format!(
                "EAL is already initialised (once per process) with {:?}",
                eal.args
            ),
        )),
        Ok(eal) => Ok(eal),
        Err(err) => Err(err.clone()),
    }
}

fn run_eal_init(args: Vec<String>) -> Result<Eal, DpdkError> {
    tracing::info!(?args, "starting DPDK EAL");
    let mut argv: Vec<*mut c_char> = Vec::with_capacity(args.len() + 1);
    for arg in &args {
        let c = CString::new(arg.as_str()).map_err(|_| {
            DpdkError::invalid("rte_eal_init", EINVAL, format!("NUL byte in {arg:?}"))
        })?;
        // Leaked on purpose: EAL may keep pointers into argv for the process lifetime.
        argv.push(c.into_raw());
    }
    argv.push(core::ptr::null_mut());
    let argc = c_int::try_from(args.len())
        .map_err(|_| DpdkError::invalid("rte_eal_init", EINVAL, "too many arguments"))?;
    let argv: &'static mut [*mut c_char] = argv.leak();
    // Before the EAL probes a TAP: no per-frame RX signal (signals.rs says
    // why). Failing that costs speed, not correctness.
    if let Err(e) = super::signals::occupy_tap_rx_signals() {
        tracing::warn!(error = %e, "the TAP driver's per-frame RX signal stays on");
    }
    // SAFETY: argv holds argc valid NUL-terminated strings followed by NULL, all leaked so
    // they outlive EAL (which may permute argv and keep pointers into it). The OnceLock
    // guarantees this runs once per process.
    let ret = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
    if ret < 0 {
        let err = DpdkError::from_rte_errno("rte_eal_init");
        tracing::error!(%err, "DPDK EAL init failed");
        return Err(err);
    }
    Ok(Eal { args })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_follow_config() {
        let cfg = Dpdk {
            eal_args: vec!["--no-pci".to_owned(), "-l".to_owned(), "0".to_owned()],
            vdevs: vec!["net_tap0,iface=x0".to_owned()],
            allow: vec!["0000:03:00.0,txq_inline_max=0".to_owned()],
            memory_mb: 128,
            ..Dpdk::default()
        };
        let args = eal_args(&cfg);
        let joined = args.join(" ");
        assert_eq!(args[0], PROGRAM);
        assert!(joined.contains("--proc-type=primary --no-shconf --file-prefix=ftoe-"));
        assert!(joined.contains("--no-huge -m 128"), "{joined}");
        assert!(joined.contains("--vdev=net_tap0,iface=x0"));
        assert!(joined.contains("-a 0000:03:00.0,txq_inline_max=0"));
        assert!(joined.ends_with("--no-pci -l 0"), "{joined}");
        for plugin in pmd_plugins(&cfg) {
            assert!(joined.contains(&format!("-d {}", plugin.display())));
        }
    }

    #[test]
    fn user_options_replace_defaults() {
        let cfg = Dpdk {
            eal_args: vec![
                "--file-prefix=mine".to_owned(),
                "-m".to_owned(),
                "64".to_owned(),
            ],
            vdevs: Vec::new(),
            no_huge: true,
            ..Dpdk::default()
        };
        let args = eal_args(&cfg);
        assert_eq!(
            args.iter()
                .filter(|a| a.starts_with("--file-prefix"))
                .count(),
            1
        );
        assert_eq!(args.iter().filter(|a| *a == "-m").count(), 1);
        assert!(!pmd_plugins(&cfg)
            .iter()
            .any(|p| p.ends_with("librte_net_tap.so")));
        let hugepages = Dpdk {
            no_huge: false,
            ..Dpdk::default()
        };
        assert!(!eal_args(&hugepages).iter().any(|a| a == "--no-huge"));
        assert!(eal_args(&hugepages)
            .iter()
            .any(|a| a == "--huge-unlink=always"));
    }
}
