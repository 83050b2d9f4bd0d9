/* splice.c: connection splicing (AccelTCP, NSDI'20) after a proxy.
 *
 * A proxy accepted a client's connection C1 and opened C2 to a server; once
 * both are idle, an entry per direction makes this program forward the
 * client's segments on C1 as C2's to the server, and the server's back as
 * C1's: addresses, ports and MACs rewritten, sequence and acknowledgement
 * numbers moved by the offset between the two connections, both checksums
 * updated incrementally (RFC 1624), and out of the port again (XDP_TX).
 * The proxy and the engine never see the spliced bytes.
 *
 * splice        hash splice_key (a segment's addresses and ports as
 *               received, network order) -> splice_to (what to write)
 * splice_stats  per-replica array: [0] segments, [1] payload bytes
 *
 * Limits: IPv4 without options; the connections without TCP timestamps or
 * SACK (their values would need translating too) and without window
 * scaling unless both sides use the same shift. docs/xdp.md. */
#include "flextoe_xdp.h"

struct splice_key {
    u32 saddr, daddr;
    u16 sport, dport;
};

struct splice_to {
    u8 dmac[6], smac[6];
    u32 saddr, daddr; /* network order */
    u16 sport, dport; /* network order */
    u32 seq_delta;    /* added to the sequence number */
    u32 ack_delta;    /* added to the acknowledgement number */
};

FLEXTOE_MAP(splice, FLEXTOE_MAP_HASH, struct splice_key, struct splice_to, 4096);
FLEXTOE_MAP(splice_stats, FLEXTOE_MAP_PER_REPLICA, u32, u64, 2);

/* Writes 2 bytes of `src` at `p`; returns the one's-complement difference
 * (RFC 1624: ~m + m') of that 16-bit word. */
FLEXTOE_INLINE u32 put16(u8 *p, const u8 *src) {
    u32 old = load_be16(p);
    p[0] = src[0];
    p[1] = src[1];
    return (~old & 0xffff) + load_be16(p);
}

FLEXTOE_INLINE u32 put32(u8 *p, u32 value) {
    u8 b[4] = {value >> 24, value >> 16, value >> 8, value};
    return put16(p, b) + put16(p + 2, b + 2);
}

FLEXTOE_INLINE void fix_csum(u8 *p, u32 diff) {
    u32 sum = (~load_be16(p) & 0xffff) + diff;
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    u16 c = ~sum;
    p[0] = c >> 8;
    p[1] = c;
}

SEC("xdp") u64 splice_prog(u8 *pkt) {
    u32 len = flextoe_md.len;
    if (len < 54 || pkt[12] != 0x08 || pkt[13] != 0x00 || pkt[14] != 0x45 || pkt[23] != 6)
        return XDP_PASS;
    struct splice_key k;
    __builtin_memcpy(&k.saddr, pkt + 26, 4);
    __builtin_memcpy(&k.daddr, pkt + 30, 4);
    __builtin_memcpy(&k.sport, pkt + 34, 2);
    __builtin_memcpy(&k.dport, pkt + 36, 2);
    struct splice_to t;
    if (splice_lookup(&k, &t) != 0)
        return XDP_PASS;

    __builtin_memcpy(pkt, t.dmac, 6);
    __builtin_memcpy(pkt + 6, t.smac, 6);
    /* Addresses: in the IP header and the TCP pseudo-header. */
    u8 *a = (u8 *)&t.saddr;
    u32 d = put16(pkt + 26, a) + put16(pkt + 28, a + 2);
    a = (u8 *)&t.daddr;
    d += put16(pkt + 30, a) + put16(pkt + 32, a + 2);
    fix_csum(pkt + 24, d);
    u32 tcp = d + put16(pkt + 34, (u8 *)&t.sport) + put16(pkt + 36, (u8 *)&t.dport);
    tcp += put32(pkt + 38, load_be32(pkt + 38) + t.seq_delta);
    if (pkt[47] & 0x10)
        tcp += put32(pkt + 42, load_be32(pkt + 42) + t.ack_delta);
    fix_csum(pkt + 50, tcp);

    u32 s = 0;
    splice_stats_add(&s, 0, 1);
    s = 1;
    u32 doff = (pkt[46] >> 4) * 4;
    u32 ip_len = load_be16(pkt + 16);
    if (ip_len > 20 + doff)
        splice_stats_add(&s, 0, ip_len - 20 - doff);
    return XDP_TX;
}
