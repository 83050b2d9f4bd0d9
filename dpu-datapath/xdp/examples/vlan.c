/* vlan.c: 802.1Q for a peer on a VLAN sub-interface. Section "xdp" (load
 * at ingress) strips the tag of frames of VLAN vlan_cfg[0]; section
 * "xdp_egress" (load at egress) inserts it into every frame. Frames of
 * other VLANs are dropped at ingress; untagged ones pass.
 *
 * vlan_cfg  array u32 -> u64: [0] the VLAN id (0: strip any tag),
 *           [1] frames stripped, [2] frames tagged, [3] other VLANs dropped
 *
 *   flextoe-dpu bpf load vlan.o --hook ingress
 *   flextoe-dpu bpf load vlan.o --hook egress --section xdp_egress
 *   flextoe-dpu bpf map update vlan_cfg 00000000 6400000000000000   # VLAN 100 */
#include "flextoe_xdp.h"

FLEXTOE_MAP(vlan_cfg, FLEXTOE_MAP_ARRAY, u32, u64, 4);

SEC("xdp") u64 vlan_strip(u8 *pkt) {
    if (flextoe_md.len < 18 || pkt[12] != 0x81 || pkt[13] != 0x00)
        return XDP_PASS;
    u32 k = 0;
    u64 vid = 0;
    vlan_cfg_lookup(&k, &vid);
    u64 tagged = ((pkt[14] & 0x0f) << 8) | pkt[15];
    if (vid != 0 && tagged != vid) {
        k = 3;
        vlan_cfg_add(&k, 0, 1);
        return XDP_DROP;
    }
    /* Move the MAC addresses over the tag, then drop the 4 bytes in front. */
    for (int i = 11; i >= 0; i--)
        pkt[i + 4] = pkt[i];
    if (flextoe_adjust_head(4) != 0)
        return XDP_ABORTED;
    k = 1;
    vlan_cfg_add(&k, 0, 1);
    return XDP_PASS;
}

SEC("xdp_egress") u64 vlan_push(u8 *pkt) {
    u32 k = 0;
    u64 vid = 0;
    vlan_cfg_lookup(&k, &vid);
    if (vid == 0 || flextoe_md.len < 14)
        return XDP_PASS;
    if (flextoe_adjust_head(-4) != 0)
        return XDP_PASS; /* no room: leave it untagged */
    /* The frame moved 4 bytes back: put the MACs in front, then the tag. */
    for (int i = 0; i < 12; i++)
        pkt[i] = pkt[i + 4];
    pkt[12] = 0x81;
    pkt[13] = 0x00;
    pkt[14] = (vid >> 8) & 0x0f;
    pkt[15] = vid & 0xff;
    k = 2;
    vlan_cfg_add(&k, 0, 1);
    return XDP_PASS;
}
