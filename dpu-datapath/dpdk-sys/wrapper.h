/*
 * Everything dpdk-sys binds. bindgen reads this header with every token of
 * `pkg-config --cflags libdpdk` (among them `-include rte_config.h` and
 * `-march=...`); build.rs compiles the generated `extern.c` wrappers, which
 * #include this file, with the same flags.
 */
#ifndef DPDK_SYS_WRAPPER_H
#define DPDK_SYS_WRAPPER_H

#include <stdint.h>

#include <rte_build_config.h>
#include <rte_bpf.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_flow.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_version.h>

/*
 * `rte_errno` is a macro over the per-lcore TLS variable
 * `per_lcore__rte_errno`; Rust cannot read a C thread-local directly. These
 * static-inline accessors get `__extern` wrappers like the DPDK ones.
 */
static inline int dpdk_sys_errno(void) { return rte_errno; }
static inline void dpdk_sys_set_errno(int value) { rte_errno = value; }

/*
 * `RTE_ETH_*` flags are `RTE_BIT64(n)` function-like macros that bindgen's
 * macro evaluator cannot expand. Const copies are evaluated by libclang, so
 * bindgen emits them as Rust `pub const`s with the values of *these* headers.
 */
#define DPDK_SYS_FLAG(name, value) \
    static const uint64_t DPDK_SYS_##name __attribute__((unused)) = (value)

DPDK_SYS_FLAG(RX_OFFLOAD_IPV4_CKSUM, RTE_ETH_RX_OFFLOAD_IPV4_CKSUM);
DPDK_SYS_FLAG(RX_OFFLOAD_TCP_CKSUM, RTE_ETH_RX_OFFLOAD_TCP_CKSUM);
DPDK_SYS_FLAG(RX_OFFLOAD_UDP_CKSUM, RTE_ETH_RX_OFFLOAD_UDP_CKSUM);
DPDK_SYS_FLAG(RX_OFFLOAD_RSS_HASH, RTE_ETH_RX_OFFLOAD_RSS_HASH);
DPDK_SYS_FLAG(RX_OFFLOAD_SCATTER, RTE_ETH_RX_OFFLOAD_SCATTER);
DPDK_SYS_FLAG(TX_OFFLOAD_IPV4_CKSUM, RTE_ETH_TX_OFFLOAD_IPV4_CKSUM);
DPDK_SYS_FLAG(TX_OFFLOAD_TCP_CKSUM, RTE_ETH_TX_OFFLOAD_TCP_CKSUM);
DPDK_SYS_FLAG(TX_OFFLOAD_UDP_CKSUM, RTE_ETH_TX_OFFLOAD_UDP_CKSUM);
DPDK_SYS_FLAG(TX_OFFLOAD_TCP_TSO, RTE_ETH_TX_OFFLOAD_TCP_TSO);
DPDK_SYS_FLAG(TX_OFFLOAD_MULTI_SEGS, RTE_ETH_TX_OFFLOAD_MULTI_SEGS);
DPDK_SYS_FLAG(TX_OFFLOAD_MBUF_FAST_FREE, RTE_ETH_TX_OFFLOAD_MBUF_FAST_FREE);
DPDK_SYS_FLAG(RSS_IPV4, RTE_ETH_RSS_IPV4);
DPDK_SYS_FLAG(RSS_NONFRAG_IPV4_TCP, RTE_ETH_RSS_NONFRAG_IPV4_TCP);
DPDK_SYS_FLAG(LINK_SPEED_AUTONEG, RTE_ETH_LINK_SPEED_AUTONEG);

#undef DPDK_SYS_FLAG

#endif /* DPDK_SYS_WRAPPER_H */
