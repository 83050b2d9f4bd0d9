/* pass.c: the empty program (every frame passes); the hook's fixed cost
 * in benchmarks. */
#include "flextoe_xdp.h"

SEC("xdp") u64 pass(u8 *pkt) {
    (void)pkt;
    return XDP_PASS;
}
