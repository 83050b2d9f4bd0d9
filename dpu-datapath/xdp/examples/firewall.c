/* firewall.c: drops every IPv4 frame whose flow or source prefix is denied.
 *
 * fw_flows    hash  struct fw_flow (the 5-tuple) -> hits
 * fw_prefixes hash  struct fw_prefix (length, masked source) -> hits,
 *                   looked up for /32, /24, /16 and /8
 * fw_stats    per-replica array: [0] IPv4 frames checked, [1] dropped
 *
 * Rules change while it runs:
 *   flextoe-dpu bpf map update fw_prefixes 18000000c6120001 0000000000000000
 * denies 198.18.0.1/24... (key: length u32 little-endian, then the address
 * in network order masked to that length; see docs/xdp.md). A denied SYN
 * never reaches the engine, so the client's connect times out. */
#include "flextoe_xdp.h"

struct fw_flow {
    u32 saddr, daddr; /* network order */
    u16 sport, dport; /* network order */
    u32 proto;
};

struct fw_prefix {
    u32 len;  /* prefix length */
    u32 addr; /* network order, masked */
};

FLEXTOE_MAP(fw_flows, FLEXTOE_MAP_HASH, struct fw_flow, u64, 65536);
FLEXTOE_MAP(fw_prefixes, FLEXTOE_MAP_HASH, struct fw_prefix, u64, 65536);
FLEXTOE_MAP(fw_stats, FLEXTOE_MAP_PER_REPLICA, u32, u64, 2);

FLEXTOE_INLINE int denied_prefix(u32 saddr_be, u32 len) {
    struct fw_prefix p = {len, 0};
    /* saddr_be holds the address as memory bytes; mask in network order. */
    u32 host = bswap32(saddr_be);
    u32 mask = len == 32 ? 0xffffffffu : ~(0xffffffffu >> len);
    p.addr = bswap32(host & mask);
    u64 hits;
    if (fw_prefixes_lookup(&p, &hits) == 0) {
        fw_prefixes_add(&p, 0, 1);
        return 1;
    }
    return 0;
}

SEC("xdp") u64 firewall(u8 *pkt) {
    u32 len = flextoe_md.len;
    if (len < 34 || pkt[12] != 0x08 || pkt[13] != 0x00)
        return XDP_PASS; /* not IPv4 (ARP passes) */
    u32 checked = 0, dropped = 1;
    fw_stats_add(&checked, 0, 1);
    u32 ihl = (pkt[14] & 0x0f) * 4;
    u32 saddr = *(u32 *)(pkt + 26);
    u32 daddr = *(u32 *)(pkt + 30);
    if (denied_prefix(saddr, 32) || denied_prefix(saddr, 24) ||
        denied_prefix(saddr, 16) || denied_prefix(saddr, 8))
        goto drop;
    if (ihl >= 20 && ihl <= 60 && len >= 14 + ihl + 4) {
        struct fw_flow f = {saddr, daddr, 0, 0, pkt[23]};
        /* ihl is bounded: the validator checks pkt + 14 + ihl + 4 <= window */
        f.sport = *(u16 *)(pkt + 14 + ihl);
        f.dport = *(u16 *)(pkt + 16 + ihl);
        u64 hits;
        if (fw_flows_lookup(&f, &hits) == 0) {
            fw_flows_add(&f, 0, 1);
            goto drop;
        }
    }
    return XDP_PASS;
drop:
    fw_stats_add(&dropped, 0, 1);
    return XDP_DROP;
}
