//! ARP's decisions: answering requests for our address, learning senders,
//! resolving next hops for active opens with retries (a request at once,
//! again after 1 s and 2 s, failure at 3 s), and what happens to the
//! handshakes waiting for a resolution (their SYN goes out when it
//! succeeds; they fail with "host unreachable" when it does not).

use super::*;
use crate::app::{AppEvent, ConnError, ConnPhase, EventKind};
use crate::control::test_util::*;
use crate::wire::{SeqNumber, TcpFlags};

const ZERO_MAC: EthernetAddress = EthernetAddress([0; 6]);
const OTHER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x07]);
const STRANGER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 7);
const ELSEWHERE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 9);

fn request(sender_mac: EthernetAddress, sender_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    arp_frame(
        ArpOperation::Request,
        sender_mac,
        sender_ip,
        ZERO_MAC,
        target,
    )
}

fn reply(sender_mac: EthernetAddress, sender_ip: Ipv4Addr, target: Ipv4Addr) -> Vec<u8> {
    arp_frame(ArpOperation::Reply, sender_mac, sender_ip, OUR_MAC, target)
}

/// The SYN of an active open on `t` (ISS `iss`) sent at `now`.
fn syn(t: &FourTuple, iss: SeqNumber, now: u64) -> Sent {
    Sent::Tcp(out(
        t,
        TcpFlags::SYN,
        iss,
        SeqNumber(0),
        65535,
        opts(Some(1448), Some(3), true, Some((ts(now), 0))),
    ))
}

/// Two active opens to the peer (ports 8080 and 8081) at 100 ms, its MAC
/// unknown: their tuples, in order.
fn two_opens(eng: &mut Engine) -> Vec<(crate::app::ConnId, FourTuple)> {
    at(eng, 100 * MS);
    [PORT, PORT + 1]
        .into_iter()
        .map(|port| {
            let c = eng.active_open(PEER_IP, port, None, None).unwrap();
            (c, eng.apps.get(c).unwrap().tuple)
        })
        .collect()
}

#[test]
fn a_request_for_our_address_is_answered_and_its_sender_learned() {
    let mut eng = engine(|_| {});
    at(&mut eng, 100 * MS);
    exception(&mut eng, &request(PEER_MAC, PEER_IP, OUR_IP));
    assert_eq!(
        sent(&mut eng),
        vec![Sent::Arp {
            eth_src: OUR_MAC,
            eth_dst: PEER_MAC,
            arp: ArpRepr {
                operation: ArpOperation::Reply,
                source_hardware_addr: OUR_MAC,
                source_protocol_addr: OUR_IP,
                target_hardware_addr: PEER_MAC,
                target_protocol_addr: PEER_IP,
            },
        }]
    );
    assert_eq!(eng.stats.arp_replies_sent, 1);
    assert_eq!(eng.ctrl.arp.len(), 1);
    assert_eq!(
        eng.ctrl.arp.entries.get(&PEER_IP),
        Some(&(PEER_MAC, 100 * MS + ARP_ENTRY_TTL_NS))
    );
    assert_eq!(eng.stats.total_drops(), 0);
}

#[test]
fn arp_about_other_hosts_from_a_stranger_is_ignored() {
    let mut eng = engine(|_| {});
    exception(&mut eng, &request(OTHER_MAC, STRANGER, ELSEWHERE));
    exception(&mut eng, &reply(OTHER_MAC, STRANGER, ELSEWHERE));
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.stats.drops(DropReason::ArpIgnored), 2);
    assert!(eng.ctrl.arp.is_empty());
}

#[test]
fn a_known_sender_is_updated_without_an_answer() {
    // RFC 826's merge: a known sender's entry follows its new address.
    let mut eng = engine(|_| {});
    eng.ctrl.arp.insert(PEER_IP, PEER_MAC, 0);
    at(&mut eng, 30 * S);
    exception(&mut eng, &request(OTHER_MAC, PEER_IP, ELSEWHERE));
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(
        eng.ctrl.arp.entries.get(&PEER_IP),
        Some(&(OTHER_MAC, 30 * S + ARP_ENTRY_TTL_NS))
    );
    assert_eq!(eng.stats.arp_replies_sent, 0);
    assert_eq!(eng.stats.total_drops(), 0);
}

#[test]
fn one_request_is_sent_for_all_the_opens_waiting_on_a_next_hop() {
    let mut eng = engine(|_| {});
    let opens = two_opens(&mut eng);
    assert_eq!(sent(&mut eng), vec![arp_request(PEER_IP)]);
    assert_eq!(eng.stats.arp_requests_sent, 1);
    let pending = &eng.ctrl.arp.pending[&PEER_IP];
    assert_eq!(pending.tries, 0);
    assert_eq!(pending.waiting, vec![opens[0].1, opens[1].1]);
    // Two handshake timers and one ARP timer (at 1.1 s).
    assert_eq!(eng.timer_entries(), 3);
    assert_eq!(eng.next_deadline(), Some(1100 * MS));
}

#[test]
fn a_reply_releases_the_syn_of_every_waiting_open() {
    let mut eng = engine(|_| {});
    let opens = two_opens(&mut eng);
    assert_eq!(sent(&mut eng).len(), 1);
    at(&mut eng, 200 * MS);
    exception(&mut eng, &reply(PEER_MAC, PEER_IP, OUR_IP));
    let iss = |t: &FourTuple| eng.ctrl.handshakes[t].iss;
    let (t1, t2) = (opens[0].1, opens[1].1);
    let want = vec![syn(&t1, iss(&t1), 200 * MS), syn(&t2, iss(&t2), 200 * MS)];
    assert_eq!(sent(&mut eng), want);
    for (_, t) in &opens {
        let h = &eng.ctrl.handshakes[t];
        assert_eq!(
            (h.remote_mac, h.sent_at, h.deadline),
            (Some(PEER_MAC), 200 * MS, 1200 * MS)
        );
    }
    assert!(eng.ctrl.arp.pending.is_empty());
    assert_eq!(eng.ctrl.arp.lookup(PEER_IP, 200 * MS), Some(PEER_MAC));
    assert_eq!(eng.stats.arp_replies_sent, 0);
    // The resolution's timer finds nothing left to do.
    at(&mut eng, 1100 * MS);
    eng.arp_timer(PEER_IP);
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.stats.arp_requests_sent, 1);
}

#[test]
fn an_unanswered_resolution_retries_twice_then_fails_every_waiting_open() {
    let mut eng = engine(|_| {});
    let opens = two_opens(&mut eng);
    assert_eq!(sent(&mut eng).len(), 1);
    for (tries, now) in [(1u8, 1100 * MS), (2, 2100 * MS)] {
        at(&mut eng, now);
        let timers = eng.timer_entries();
        eng.arp_timer(PEER_IP);
        assert_eq!(sent(&mut eng), vec![arp_request(PEER_IP)]);
        assert_eq!(eng.ctrl.arp.pending[&PEER_IP].tries, tries);
        assert_eq!(eng.timer_entries(), timers + 1);
    }
    at(&mut eng, 3100 * MS);
    eng.arp_timer(PEER_IP);
    assert_eq!(sent(&mut eng), vec![]);
    assert!(eng.ctrl.arp.pending.is_empty());
    assert!(eng.ctrl.arp.is_empty());
    assert_eq!(eng.control_counts(), (0, 0));
    assert_eq!(eng.stats.arp_requests_sent, 3);
    assert_eq!(eng.stats.connect_failures, 2);
    // Failed by ARP, not by the handshake's retry budget.
    assert_eq!(eng.stats.handshakes_expired, 0);
    for (c, _) in &opens {
        let app = eng.apps.get(*c).unwrap();
        assert_eq!(
            (app.phase, app.error),
            (ConnPhase::Finished, Some(ConnError::HostUnreachable))
        );
        assert_eq!(
            eng.apps.next_event(),
            Some(AppEvent {
                conn: *c,
                kinds: EventKind::ERROR | EventKind::FINISHED
            })
        );
    }
}

#[test]
fn resolve_answers_from_a_live_entry_and_for_our_own_address_without_asking() {
    let mut eng = engine(|_| {});
    let t = tuple(PEER_PORT);
    eng.ctrl.arp.insert(PEER_IP, PEER_MAC, 0);
    at(&mut eng, ARP_ENTRY_TTL_NS - 1);
    assert_eq!(eng.resolve(PEER_IP, t), Some(PEER_MAC));
    // Frames to ourselves loop back through the NIC layer.
    assert_eq!(eng.resolve(OUR_IP, t), Some(OUR_MAC));
    assert_eq!(sent(&mut eng), vec![]);
    assert!(eng.ctrl.arp.pending.is_empty());
    // 60 s after it was learned the entry is stale: ask again, once.
    at(&mut eng, ARP_ENTRY_TTL_NS);
    let timers = eng.timer_entries();
    assert_eq!(eng.resolve(PEER_IP, t), None);
    let t2 = tuple(PEER_PORT + 1);
    assert_eq!(eng.resolve(PEER_IP, t2), None);
    assert_eq!(sent(&mut eng), vec![arp_request(PEER_IP)]);
    assert_eq!(eng.ctrl.arp.pending[&PEER_IP].waiting, vec![t, t2]);
    assert_eq!(eng.timer_entries(), timers + 1);
}

#[test]
fn an_off_link_destination_resolves_the_gateway_and_needs_one() {
    let gateway = Ipv4Addr::new(198, 18, 0, 254);
    let far = Ipv4Addr::new(10, 1, 2, 3);
    let mut eng = engine(|c| c.identity.gateway = Some(gateway.to_string()));
    let c = eng.active_open(far, 80, None, None).unwrap();
    let t = eng.apps.get(c).unwrap().tuple;
    assert_eq!((t.remote_ip, t.remote_port), (far, 80));
    assert_eq!(sent(&mut eng), vec![arp_request(gateway)]);
    assert_eq!(eng.ctrl.arp.pending[&gateway].waiting, vec![t]);

    let mut eng = engine(|_| {});
    assert_eq!(
        eng.active_open(far, 80, None, None),
        Err(crate::engine::ApiError::NoRoute)
    );
    assert_eq!(sent(&mut eng), vec![]);
    assert_eq!(eng.control_counts(), (0, 0));
    assert_eq!(eng.app_conn_count(), 0);
}

#[test]
fn arp_seen_elsewhere_teaches_only_relevant_unicast_senders() {
    let mut eng = engine(|_| {});
    let now = 100 * MS;
    // Not about us, from a stranger; a broadcast sender; one claiming our
    // own address: none is learned.
    eng.learn_arp(&request(OTHER_MAC, STRANGER, ELSEWHERE), now);
    eng.learn_arp(&request(EthernetAddress::BROADCAST, STRANGER, OUR_IP), now);
    eng.learn_arp(&request(OTHER_MAC, OUR_IP, OUR_IP), now);
    assert!(eng.ctrl.arp.is_empty());
    // A sender talking to us is.
    eng.learn_arp(&request(OTHER_MAC, STRANGER, OUR_IP), now);
    assert_eq!(eng.ctrl.arp.lookup(STRANGER, now), Some(OTHER_MAC));
    // So is a next hop we are resolving, whoever it talks to, and its
    // waiting open sends its SYN.
    let c = eng.active_open(PEER_IP, PORT, None, None).unwrap();
    let t = eng.apps.get(c).unwrap().tuple;
    assert_eq!(sent(&mut eng), vec![arp_request(PEER_IP)]);
    eng.learn_arp(&request(PEER_MAC, PEER_IP, ELSEWHERE), now);
    let iss = eng.ctrl.handshakes[&t].iss;
    assert_eq!(sent(&mut eng), vec![syn(&t, iss, now)]);
    assert_eq!(eng.ctrl.arp.len(), 2);
    // Never answered, never counted as dropped.
    assert_eq!(eng.stats.arp_replies_sent, 0);
    assert_eq!(eng.stats.total_drops(), 0);
}

#[test]
fn the_cache_sweeps_expired_entries_before_growing_past_1024() {
    let mut cache = ArpCache::default();
    let ip = |i: u32| Ipv4Addr::from(0x0a00_0000 + i);
    for i in 0..1024 {
        cache.insert(ip(i), PEER_MAC, 0);
    }
    assert_eq!(cache.len(), 1024);
    // Nothing has expired yet: it grows.
    cache.insert(ip(5000), PEER_MAC, 30 * S);
    assert_eq!(cache.len(), 1025);
    // Refreshing a known entry never sweeps.
    cache.insert(ip(0), OTHER_MAC, 61 * S);
    assert_eq!(cache.len(), 1025);
    // A new one past the TTL of the first 1024: only the live ones stay.
    cache.insert(ip(6000), PEER_MAC, 61 * S);
    assert_eq!(cache.len(), 3);
    assert_eq!(cache.lookup(ip(0), 61 * S), Some(OTHER_MAC));
    assert_eq!(cache.lookup(ip(5000), 61 * S), Some(PEER_MAC));
    assert_eq!(cache.lookup(ip(6000), 61 * S), Some(PEER_MAC));
    assert_eq!(cache.lookup(ip(1), 61 * S), None);
}
