//! Checks of `tcp`, including how it fits `port.mtu`.

use super::report::Report;
use crate::{CongestionControl, RateControl, Tcp, Timely};

/// IPv4 and TCP headers without options.
const HEADERS: u32 = 40;

/// `mtu` is `port.mtu` when it is valid.
pub(crate) fn check(tcp: &Tcp, mtu: Option<u16>, report: &mut Report) {
    let mss_ok = report.range("tcp.mss", tcp.mss, 88..=9000);
    if let (true, Some(mtu)) = (mss_ok, mtu) {
        check_fits_mtu(tcp.mss, mtu, report);
    }
    report.power_of_two("tcp.rx_buffer", tcp.rx_buffer.into(), 4096..=1 << 30);
    report.power_of_two("tcp.tx_buffer", tcp.tx_buffer.into(), 4096..=1 << 30);
    check_rto(tcp, report);
    report.range("tcp.delayed_ack_us", tcp.delayed_ack_us, 0..=500_000);
    report.range("tcp.max_connections", tcp.max_connections, 1..=1 << 24);
    report.range("tcp.time_wait_ms", tcp.time_wait_ms, 0..=240_000);
    report.range("tcp.listen_backlog", tcp.listen_backlog, 1..=65535);
    report.range("tcp.synack_retries", tcp.synack_retries, 0..=255);
    report.range("tcp.syn_cookie_rate", tcp.syn_cookie_rate, 0..=100_000_000);
    report.range("tcp.ooo_intervals", tcp.ooo_intervals, 1..=8);
    match (tcp.congestion_control, tcp.ecn) {
        (CongestionControl::Dctcp, false) => report.error(
            "tcp.congestion_control",
            "\"dctcp\" needs ECN marks; set tcp.ecn to true",
        ),
        (CongestionControl::DctcpRate, false) => report.error(
            "tcp.congestion_control",
            "\"dctcp-rate\" needs ECN marks; set tcp.ecn to true",
        ),
        _ => {}
    }
    if tcp.congestion_control_by_port.contains_key(&0) {
        report.error(
            "tcp.congestion_control_by_port",
            "port 0 cannot listen; ports are 1..=65535",
        );
    }
    report.range(
        "tcp.initial_cwnd_segments",
        tcp.initial_cwnd_segments,
        1..=100,
    );
    check_timely(&tcp.timely, report);
    check_rate_control(&tcp.rate_control, report);
}

fn check_timely(t: &Timely, report: &mut Report) {
    let low_ok = report.range("tcp.timely.t_low_us", t.t_low_us, 1..=1_000_000);
    if report.range("tcp.timely.t_high_us", t.t_high_us, 2..=1_000_000)
        && low_ok
        && t.t_high_us <= t.t_low_us
    {
        report.error(
            "tcp.timely.t_high_us",
            format!(
                "{} is not above tcp.timely.t_low_us {}; require t_low_us < t_high_us",
                t.t_high_us, t.t_low_us
            ),
        );
    }
    report.range("tcp.timely.min_rtt_us", t.min_rtt_us, 1..=1_000_000);
    report.probability("tcp.timely.beta", t.beta);
    report.probability("tcp.timely.ewma_alpha", t.ewma_alpha);
    report.range("tcp.timely.hai_threshold", t.hai_threshold, 1..=255);
}

fn check_rate_control(t: &RateControl, report: &mut Report) {
    report.range("tcp.rate_control.step_mbps", t.step_mbps, 1..=100_000);
    let max_ok = report.range(
        "tcp.rate_control.max_rate_mbps",
        t.max_rate_mbps,
        1..=400_000,
    );
    let min_ok = report.range(
        "tcp.rate_control.min_rate_mbps",
        t.min_rate_mbps,
        1..=400_000,
    );
    let init_ok = report.range(
        "tcp.rate_control.initial_rate_mbps",
        t.initial_rate_mbps,
        1..=400_000,
    );
    let rule = "require min_rate_mbps <= initial_rate_mbps <= max_rate_mbps";
    if max_ok && min_ok && t.min_rate_mbps > t.max_rate_mbps {
        report.error(
            "tcp.rate_control.min_rate_mbps",
            format!(
                "{} is above tcp.rate_control.max_rate_mbps {}; {rule}",
                t.min_rate_mbps, t.max_rate_mbps
            ),
        );
    } else if min_ok && init_ok && t.initial_rate_mbps < t.min_rate_mbps {
        report.error(
            "tcp.rate_control.initial_rate_mbps",
            format!(
                "{} is below tcp.rate_control.min_rate_mbps {}; {rule}",
                t.initial_rate_mbps, t.min_rate_mbps
            ),
        );
    } else if max_ok && init_ok && t.initial_rate_mbps > t.max_rate_mbps {
        report.error(
            "tcp.rate_control.initial_rate_mbps",
            format!(
                "{} is above tcp.rate_control.max_rate_mbps {}; {rule}",
                t.initial_rate_mbps, t.max_rate_mbps
            ),
        );
    }
}

fn check_fits_mtu(mss: u16, mtu: u16, report: &mut Report) {
    let room = u32::from(mtu) - HEADERS;
    if u32::from(mss) > room {
        report.error(
            "tcp.mss",
            format!("{mss} + {HEADERS} header bytes exceeds port.mtu {mtu}; at most {room} fits"),
        );
    }
}

fn check_rto(tcp: &Tcp, report: &mut Report) {
    let initial_ok = report.range("tcp.initial_rto_ms", tcp.initial_rto_ms, 1..=600_000);
    let min_ok = report.range("tcp.min_rto_ms", tcp.min_rto_ms, 1..=600_000);
    let max_ok = report.range("tcp.max_rto_ms", tcp.max_rto_ms, 1..=600_000);
    let rule = "require min_rto_ms <= initial_rto_ms <= max_rto_ms";
    if min_ok && max_ok && tcp.min_rto_ms > tcp.max_rto_ms {
        report.error(
            "tcp.min_rto_ms",
            format!(
                "{} is above tcp.max_rto_ms {}; {rule}",
                tcp.min_rto_ms, tcp.max_rto_ms
            ),
        );
    } else if initial_ok && min_ok && tcp.initial_rto_ms < tcp.min_rto_ms {
        report.error(
            "tcp.initial_rto_ms",
            format!(
                "{} is below tcp.min_rto_ms {}; {rule}",
                tcp.initial_rto_ms, tcp.min_rto_ms
            ),
        );
    } else if initial_ok && max_ok && tcp.initial_rto_ms > tcp.max_rto_ms {
        report.error(
            "tcp.initial_rto_ms",
            format!(
                "{} is above tcp.max_rto_ms {}; {rule}",
                tcp.initial_rto_ms, tcp.max_rto_ms
            ),
        );
    }
}
