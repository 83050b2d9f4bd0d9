/* capture.c: a sampled tcpdump, as a program. Frames that match the
 * configured TCP port (any when 0) are counted per replica and every N-th
 * is copied (its first `snaplen` bytes) to the service's capture ring,
 * which `flextoe-dpu bpf capture -w file.pcap` writes as pcap. Load it at
 * either hook or both; it never changes a verdict.
 *
 * cap_cfg   array u32 -> u64: [0] keep one frame in N (0 or 1: all),
 *           [1] TCP port to match, either direction (0: any frame),
 *           [2] snaplen (0: 128 bytes)
 * cap_seen  per-replica array: [0] frames that matched, [1] captured
 *
 *   flextoe-dpu bpf load capture.o
 *   flextoe-dpu bpf map update cap_cfg 00000000 0a00000000000000   # 1 in 10
 *   flextoe-dpu bpf capture -c 100 -w sample.pcap */
#include "flextoe_xdp.h"

FLEXTOE_MAP(cap_cfg, FLEXTOE_MAP_ARRAY, u32, u64, 3);
FLEXTOE_MAP(cap_seen, FLEXTOE_MAP_PER_REPLICA, u32, u64, 2);

SEC("xdp") u64 capture(u8 *pkt) {
    u32 k = 1;
    u64 port = 0;
    cap_cfg_lookup(&k, &port);
    if (port != 0) {
        u32 len = flextoe_md.len;
        if (len < 34 || pkt[12] != 0x08 || pkt[13] != 0x00 || pkt[23] != 6)
            return XDP_PASS;
        u32 ihl = (pkt[14] & 0x0f) * 4;
        if (ihl < 20 || len < 14 + ihl + 4)
            return XDP_PASS;
        u64 sport = load_be16(pkt + 14 + ihl);
        u64 dport = load_be16(pkt + 16 + ihl);
        if (sport != port && dport != port)
            return XDP_PASS;
    }
    u32 seen = 0;
    u64 count = 0;
    cap_seen_add(&seen, 0, 1);
    cap_seen_lookup(&seen, &count);
    k = 0;
    u64 every = 0;
    cap_cfg_lookup(&k, &every);
    if (every > 1 && count % every != 0)
        return XDP_PASS;
    k = 2;
    u64 snaplen = 0;
    cap_cfg_lookup(&k, &snaplen);
    if (flextoe_capture(snaplen ? snaplen : 128) == 0) {
        seen = 1;
        cap_seen_add(&seen, 0, 1);
    }
    return XDP_PASS;
}
