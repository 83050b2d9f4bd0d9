//! Generates the DPDK bindings against the system DPDK found by pkg-config.
//!
//! 1. `pkg-config --atleast-version=22.11 libdpdk`, else a panic that names
//!    the Debian packages to install.
//! 2. The raw `pkg-config --cflags libdpdk` tokens go, all of them and in
//!    order, to bindgen and to `cc`. DPDK's Cflags carry
//!    `-include rte_config.h` and `-march=...`, which the `pkg-config` crate
//!    would drop.
//! 3. bindgen's `wrap_static_fns` writes `OUT_DIR/extern.c`, a C wrapper
//!    `NAME__extern` for each allowlisted `static inline` function
//!    (`rte_eth_rx_burst`, `rte_pktmbuf_alloc`, ...). The Rust declarations
//!    link to those wrappers under the original names. `cc` compiles
//!    `extern.c` with the same cflags into `libdpdk_sys_extern.a`.
//! 4. The `-L` and `-l` tokens of `pkg-config --libs libdpdk` become cargo
//!    link directives.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const MIN_VERSION: &str = "22.11";
const INSTALL_HINT: &str = "install it with `apt-get install libdpdk-dev pkg-config clang \
     libclang-dev` (Debian 12 ships DPDK 22.11), or point PKG_CONFIG_PATH at a libdpdk.pc \
     of DPDK >= 22.11";

/// Functions we call. Regexes, anchored by bindgen. `static inline` ones get C wrappers.
const FUNCTIONS: &[&str] = &[
    // EAL, lcores, errors, version.
    "rte_eal_init",
    "rte_eal_cleanup",
    "rte_eal_process_type",
    "rte_lcore_id",
    "rte_lcore_count",
    "rte_thread_(register|unregister)",
    "rte_socket_id",
    "rte_strerror",
    "rte_version",
    "dpdk_sys_errno",
    "dpdk_sys_set_errno",
    // ethdev control path.
    "rte_eth_dev_count_avail",
    "rte_eth_find_next",
    "rte_eth_dev_is_valid_port",
    "rte_eth_dev_get_name_by_port",
    "rte_eth_dev_get_port_by_name",
    "rte_eth_dev_socket_id",
    "rte_eth_dev_info_get",
    "rte_eth_dev_configure",
    "rte_eth_dev_adjust_nb_rx_tx_desc",
    "rte_eth_rx_queue_setup",
    "rte_eth_tx_queue_setup",
    "rte_eth_dev_start",
    "rte_eth_dev_stop",
    "rte_eth_dev_close",
    "rte_eth_dev_set_mtu",
    "rte_eth_dev_get_mtu",
    "rte_eth_macaddr_get",
    "rte_eth_promiscuous_(enable|disable|get)",
    "rte_eth_link_get(_nowait)?",
    "rte_eth_stats_(get|reset)",
    "rte_eth_dev_rss_hash_conf_get",
    "rte_eth_dev_rss_reta_(update|query)",
    // Flow rules (`io::dpdk::rss`: RSS on net_tap is an rte_flow rule).
    "rte_flow_(create|validate|destroy|flush)",
    // ethdev fast path (static inline).
    "rte_eth_rx_burst",
    "rte_eth_tx_burst",
    // mbuf and mempool.
    "rte_pktmbuf_pool_create",
    "rte_pktmbuf_alloc(_bulk)?",
    "rte_pktmbuf_free(_bulk)?",
    "rte_pktmbuf_(append|prepend|adj|trim|reset)",
    "rte_mempool_(free|lookup|avail_count|in_use_count)",
    // eBPF programs of the XDP-style hook (`xdp::runtime`).
    "rte_bpf_(load|elf_load|exec|destroy|get_jit)",
    // The validator's messages go to DPDK's log; a load reads them back.
    "rte_openlog_stream",
    "rte_log_get_stream",
];

/// Types named directly (everything they reference comes along).
const TYPES: &[&str] = &[
    "rte_mbuf",
    "rte_mempool",
    "rte_eth_conf",
    "rte_eth_dev_info",
    "rte_eth_rxconf",
    "rte_eth_txconf",
    "rte_eth_link",
    "rte_eth_stats",
    "rte_eth_rss_conf",
    "rte_eth_rss_reta_entry64",
    "rte_flow_attr",
    "rte_flow_item",
    "rte_flow_item_type",
    "rte_flow_action",
    "rte_flow_action_type",
    "rte_flow_action_rss",
    "rte_flow_error",
    "rte_ether_addr",
    "rte_eth_rx_mq_mode",
    "rte_eth_tx_mq_mode",
    "rte_proc_type_t",
    "rte_bpf_prm",
    "rte_bpf_xsym",
    "rte_bpf_jit",
];

/// Constants: object-like macros bindgen can evaluate, plus wrapper.h's copies.
const VARS: &[&str] = &[
    "RTE_ETH_.*",
    "RTE_MBUF_F_.*",
    "RTE_MBUF_DEFAULT_(BUF_SIZE|DATAROOM)",
    "RTE_PKTMBUF_HEADROOM",
    "RTE_MEMPOOL_NAMESIZE",
    "RTE_MAX_ETHPORTS",
    "RTE_EAL_PMD_PATH",
    "RTE_VER_(YEAR|MONTH|MINOR)",
    "SOCKET_ID_ANY",
    "LCORE_ID_ANY",
    "DPDK_SYS_.*",
    "EBPF_FUNC_MAX_ARGS",
];

fn pkg_config(args: &[&str]) -> String {
    let out = Command::new("pkg-config")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("dpdk-sys: cannot run pkg-config ({e}); {INSTALL_HINT}"));
    if !out.status.success() {
        panic!(
            "dpdk-sys: `pkg-config {}` failed: {}; {INSTALL_HINT}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout).expect("dpdk-sys: pkg-config printed non-UTF-8")
}

fn check_version() {
    let ok = Command::new("pkg-config")
        .args([&format!("--atleast-version={MIN_VERSION}"), "libdpdk"])
        .status()
        .unwrap_or_else(|e| panic!("dpdk-sys: cannot run pkg-config ({e}); {INSTALL_HINT}"));
    if !ok.success() {
        let found = Command::new("pkg-config")
            .args(["--modversion", "libdpdk"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
        match found {
            Some(v) => panic!("dpdk-sys: found DPDK {v}, need >= {MIN_VERSION}; {INSTALL_HINT}"),
            None => panic!("dpdk-sys: pkg-config cannot find libdpdk; {INSTALL_HINT}"),
        }
    }
}

/// Turns `pkg-config --libs` tokens into cargo link directives.
fn emit_link_directives(libs: &str) {
    for token in libs.split_whitespace() {
        if let Some(dir) = token.strip_prefix("-L") {
            println!("cargo:rustc-link-search=native={dir}");
        } else if let Some(file) = token.strip_prefix("-l:") {
            // `-l:librte_x.a` (static pkg-config output): link that exact file, keeping
            // every object so PMD constructors register.
            println!("cargo:rustc-link-lib=static:+whole-archive,+verbatim={file}");
        } else if let Some(lib) = token.strip_prefix("-l") {
            println!("cargo:rustc-link-lib=dylib={lib}");
        }
        // Other tokens (`-Wl,--as-needed`, `-pthread`): rustc already links with
        // --as-needed and libpthread on Linux, and a library's build script cannot pass
        // linker arguments to its dependents' links anyway.
    }
}

fn generate(cflags: &[String], header: &Path, out_dir: &Path) {
    let mut builder = bindgen::Builder::default()
        .header(header.to_str().expect("dpdk-sys: non-UTF-8 path"))
        .clang_args(cflags)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .allowlist_recursively(true)
        .derive_default(true)
        .derive_debug(true)
        .impl_debug(false)
        .layout_tests(true)
        .generate_comments(false)
        .prepend_enum_name(false)
        .wrap_static_fns(true)
        .wrap_static_fns_path(out_dir.join("extern"));
    for f in FUNCTIONS {
        builder = builder.allowlist_function(f);
    }
    for t in TYPES {
        builder = builder.allowlist_type(t);
    }
    for v in VARS {
        builder = builder.allowlist_var(v);
    }
    let bindings = builder
        .generate()
        .unwrap_or_else(|e| panic!("dpdk-sys: bindgen failed on {}: {e}", header.display()));
    bindings
        .write_to_file(out_dir.join("bindings.rs"))
        .expect("dpdk-sys: cannot write bindings.rs");
}

fn compile_wrappers(cflags: &[String], out_dir: &Path) {
    let mut build = cc::Build::new();
    build
        .file(out_dir.join("extern.c"))
        .warnings(true)
        .extra_warnings(false);
    for flag in cflags {
        build.flag(flag);
    }
    build.compile("dpdk_sys_extern");
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=wrapper.h");
    for var in [
        "PKG_CONFIG_PATH",
        "PKG_CONFIG_LIBDIR",
        "PKG_CONFIG_SYSROOT_DIR",
    ] {
        println!("cargo:rerun-if-env-changed={var}");
    }

    check_version();
    let cflags: Vec<String> = pkg_config(&["--cflags", "libdpdk"])
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let libs = pkg_config(&["--libs", "libdpdk"]);
    let version = pkg_config(&["--modversion", "libdpdk"]);
    // Visible to dependents' build scripts as DEP_DPDK_VERSION.
    println!("cargo:version={}", version.trim());

    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let header = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"))
        .join("wrapper.h");

    generate(&cflags, &header, &out_dir);
    compile_wrappers(&cflags, &out_dir);
    // After the wrappers' static archive (emitted by cc), so the DPDK symbols resolve.
    emit_link_directives(&libs);
}
