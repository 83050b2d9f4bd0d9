//! Bytes of data-path state per connection (pre + proto + post), plus the
//! flow-table entry. Prints a table; `cargo bench -p dpu-datapath --bench state_size`.

use dpu_datapath::flow::{FlowId, FourTuple};
use std::mem::size_of;

fn main() {
    let pre = size_of::<dpu_datapath::pre::PreFlow>();
    let proto = size_of::<dpu_datapath::proto::ProtoFlow>();
    let post = size_of::<dpu_datapath::post::PostFlow>();
    // hashbrown stores (key, value) plus one control byte per bucket.
    let table = size_of::<(FourTuple, FlowId)>() + 1;
    println!("data-path state per connection:");
    println!("  pre   {pre:4} B (header template with the tuple)");
    println!("  proto {proto:4} B (sequence state, RTT, timers; OOO intervals and SACK scoreboard only while in use)");
    println!("  post  {post:4} B (application handle, CC counters)");
    println!(
        "  total {:4} B (+ {table} B flow-table entry)",
        pre + proto + post
    );
    println!(
        "  a paced connection (TIMELY or SO_MAX_PACING_RATE) adds {} B in the engine's rate table",
        dpu_datapath::engine::paced_flow_bytes()
    );
    println!(
        "application side (host memory): {} B + RX/TX buffers",
        size_of::<dpu_datapath::app::AppConn>()
    );
}
