/* flow_stats.c: packets and bytes per IPv4 flow, in both directions when
 * loaded at both hooks (`bpf map dump flow_stats`); never changes a
 * verdict. */
#include "flextoe_xdp.h"

struct flow {
    u32 saddr, daddr; /* network order */
    u16 sport, dport; /* network order */
    u32 proto;
};

struct counts {
    u64 packets;
    u64 bytes;
};

FLEXTOE_MAP(flow_stats, FLEXTOE_MAP_HASH, struct flow, struct counts, 65536);

SEC("xdp") u64 flow_stats_prog(u8 *pkt) {
    u32 len = flextoe_md.len;
    if (len < 34 || pkt[12] != 0x08 || pkt[13] != 0x00)
        return XDP_PASS;
    u32 ihl = (pkt[14] & 0x0f) * 4;
    struct flow f = {*(u32 *)(pkt + 26), *(u32 *)(pkt + 30), 0, 0, pkt[23]};
    if ((f.proto == 6 || f.proto == 17) && ihl >= 20 && len >= 14 + ihl + 4) {
        f.sport = *(u16 *)(pkt + 14 + ihl);
        f.dport = *(u16 *)(pkt + 16 + ihl);
    }
    flow_stats_add(&f, 0, 1);
    flow_stats_add(&f, 1, len);
    return XDP_PASS;
}
