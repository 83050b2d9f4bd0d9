/*
 * flextoe_xdp.h: what an XDP-style program for FlexTOE-rs may use.
 *
 * A program is one function in section "xdp" (or another section named at
 * load), compiled with `clang -target bpf -O2 -c prog.c -o prog.o`:
 *
 *     SEC("xdp") u64 prog(u8 *pkt) { ... return XDP_PASS; }
 *
 * `pkt` is the frame, at the start of a window of FLEXTOE_WINDOW bytes: the
 * service's validator (DPDK's librte_bpf) rejects any access outside the
 * window, the context `flextoe_md` and the program's stack, any loop, and
 * any call to a function this header does not declare. Bytes past
 * `flextoe_md.len` belong to the same buffer but are not the frame's: check
 * the length before reading a header, as an XDP program checks data_end.
 *
 * Maps are declared with FLEXTOE_MAP (below); the service creates them at
 * load, keeps a map's contents while any loaded program declares it (a
 * replaced program that declares the same map sees the same entries), and
 * operators read and change them with `flextoe-dpu bpf map ...`.
 *
 * docs/xdp.md has the whole contract.
 */
#ifndef FLEXTOE_XDP_H
#define FLEXTOE_XDP_H

typedef __UINT8_TYPE__ u8;
typedef __UINT16_TYPE__ u16;
typedef __UINT32_TYPE__ u32;
typedef __UINT64_TYPE__ u64;
typedef __INT64_TYPE__ s64;

#define SEC(name) __attribute__((section(name), used))

/* The runtime runs one function per program: every helper function of a
 * program must be inlined into it (the loader refuses an object with code
 * left in .text). */
#define FLEXTOE_INLINE static inline __attribute__((always_inline))

/* Verdicts, numbered as the kernel's XDP actions. */
#define XDP_ABORTED 0  /* a program error: counted, the frame passes */
#define XDP_DROP 1     /* dropped and counted */
#define XDP_PASS 2     /* on through the stack (as modified) */
#define XDP_TX 3       /* back out of the port it came in on (ingress) */
#define XDP_REDIRECT 4 /* to replica flextoe_md.redirect (ingress) or its TX queue */

/* Bytes of the frame's buffer the program may touch. */
#define FLEXTOE_WINDOW 2048

/* Hooks. */
#define FLEXTOE_HOOK_INGRESS 0
#define FLEXTOE_HOOK_EGRESS 1

/* The frame's metadata; the program may change len (shorten the frame, or
 * lengthen it up to FLEXTOE_WINDOW) and redirect. */
struct flextoe_md {
    u32 len;      /* frame length in bytes */
    u32 replica;  /* replica (queue) that runs the program */
    u32 hook;     /* FLEXTOE_HOOK_* */
    u32 redirect; /* target replica of XDP_REDIRECT */
    u32 rss;      /* the NIC's flow hash, 0 if it gave none */
    u32 reserved;
    u64 now_ns;   /* the service's clock at the burst */
};
extern struct flextoe_md flextoe_md;

/* Moves the frame's first byte by delta within the window: delta > 0 drops
 * delta bytes from the front (e.g. after moving the MAC addresses over a
 * VLAN tag), delta < 0 makes room for -delta bytes at the front. The frame
 * stays at pkt[0]; flextoe_md.len follows. Returns 0, or -1 when the result
 * would be shorter than 14 bytes or longer than the window. */
extern s64 flextoe_adjust_head(s64 delta);

/* Copies the frame's first min(len, snaplen) bytes, with the time, to the
 * service's capture ring, which `flextoe-dpu bpf capture` writes as pcap:
 * the program is the capture's filter and sampler. Returns 0, or -1 when
 * no reader is attached or the ring is full (counted). */
extern s64 flextoe_capture(u64 snaplen);

/* Map kinds. */
#define FLEXTOE_MAP_ARRAY 1       /* key u32 index < entries, values zeroed at creation */
#define FLEXTOE_MAP_HASH 2        /* any key; at most `entries` keys */
#define FLEXTOE_MAP_PER_REPLICA 3 /* an array per replica: no sharing between cores */

struct flextoe_map_def {
    u32 kind;
    u32 key_size;
    u32 value_size;
    u32 max_entries;
};

/*
 * FLEXTOE_MAP(name, kind, key type, value type, max entries) defines the
 * map and its functions, each checked by the validator against the map's
 * key and value sizes:
 *   name_lookup(&key, &value): copies the value out; 0, or -1 if absent
 *   name_update(&key, &value): sets it; 0, or -1 (index out of range, or
 *                              the hash map is full)
 *   name_delete(&key): 0, or -1 if absent (arrays: zeroes the value)
 *   name_add(&key, word, delta): adds delta to the value's 64-bit word
 *                              `word` atomically, creating a zero value in
 *                              a hash map first; 0, or -1
 */
#define FLEXTOE_MAP(name, kind, key_t, value_t, entries)                        \
    struct flextoe_map_def name SEC("maps") = {kind, sizeof(key_t),             \
                                               sizeof(value_t), entries};      \
    extern s64 name##_lookup(const key_t *key, value_t *value);                 \
    extern s64 name##_update(const key_t *key, const value_t *value);           \
    extern s64 name##_delete(const key_t *key);                                 \
    extern s64 name##_add(const key_t *key, u64 word, u64 delta)

/* Byte order helpers (the frame is in network order). */
#define bswap16(x) __builtin_bswap16(x)
#define bswap32(x) __builtin_bswap32(x)
FLEXTOE_INLINE u16 load_be16(const u8 *p) { return (u16)((p[0] << 8) | p[1]); }
FLEXTOE_INLINE u32 load_be32(const u8 *p) {
    return ((u32)p[0] << 24) | ((u32)p[1] << 16) | ((u32)p[2] << 8) | p[3];
}

#endif
