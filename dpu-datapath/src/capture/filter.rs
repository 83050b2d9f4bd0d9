//! A tcpdump-style filter for `flextoe-dpu capture`: the common subset of
//! pcap-filter(7) that operators use on TCP traffic.
//!
//! ```text
//! expr    := term ("or" term)*
//! term    := factor ("and" factor)*
//! factor  := "not" factor | "(" expr ")" | primitive
//! primitive := "tcp" | "arp" | "icmp" | "ip"
//!            | [ "src" | "dst" ] "host" IPV4
//!            | [ "src" | "dst" ] "port" N
//! ```
//! `&&`, `||` and `!` are accepted too. An empty filter matches everything.
//! Matching reads only the headers it needs, with bounds checks: any bytes
//! are safe to test.

use std::net::Ipv4Addr;

/// Which address or port a primitive tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Dir {
    Any,
    Src,
    Dst,
}

/// A parsed filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    All,
    Tcp,
    Arp,
    Icmp,
    Ip,
    Host(Dir, Ipv4Addr),
    Port(Dir, u16),
    Not(Box<Filter>),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

struct Parser<'a> {
    toks: Vec<&'a str>,
    at: usize,
    /// Nesting of `not` and parentheses (bounded: the filter comes from a
    /// client of the service, and recursion must not exhaust its stack).
    depth: usize,
}

/// Deepest nesting accepted.
const MAX_DEPTH: usize = 64;
/// Longest filter accepted, in words.
const MAX_TOKENS: usize = 256;

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.toks.get(self.at).copied()
    }

    fn next(&mut self) -> Option<&'a str> {
        let t = self.peek();
        self.at += 1;
        t
    }

    fn expr(&mut self) -> Result<Filter, String> {
        let mut f = self.term()?;
        while matches!(self.peek(), Some("or" | "||")) {
            self.next();
            f = Filter::Or(Box::new(f), Box::new(self.term()?));
        }
        Ok(f)
    }

    fn term(&mut self) -> Result<Filter, String> {
        let mut f = self.factor()?;
        loop {
            match self.peek() {
                Some("and" | "&&") => {
                    self.next();
                }
                // tcpdump allows juxtaposition only after "and"; so do we.
                _ => return Ok(f),
            }
            f = Filter::And(Box::new(f), Box::new(self.factor()?));
        }
    }

    fn factor(&mut self) -> Result<Filter, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("filter nested deeper than {MAX_DEPTH} levels"));
        }
        let f = self.factor_inner();
        self.depth -= 1;
        f
    }

    fn factor_inner(&mut self) -> Result<Filter, String> {
        match self.next() {
            Some("not" | "!") => Ok(Filter::Not(Box::new(self.factor()?))),
            Some("(") => {
                let f = self.expr()?;
                match self.next() {
                    Some(")") => Ok(f),
                    other => Err(format!("expected ')', found {}", show(other))),
                }
            }
            Some("tcp") => Ok(Filter::Tcp),
            Some("arp") => Ok(Filter::Arp),
            Some("icmp") => Ok(Filter::Icmp),
            Some("ip") => Ok(Filter::Ip),
            Some("src") => self.qualified(Dir::Src),
            Some("dst") => self.qualified(Dir::Dst),
            Some("host") => self.host(Dir::Any),
            Some("port") => self.port(Dir::Any),
            other => Err(format!(
                "unexpected {}: expected tcp, arp, icmp, ip, [src|dst] host ADDR, [src|dst] port N, not, (",
                show(other)
            )),
        }
    }

    fn qualified(&mut self, dir: Dir) -> Result<Filter, String> {
        match self.next() {
            Some("host") => self.host(dir),
            Some("port") => self.port(dir),
            other => Err(format!(
                "expected host or port after src/dst, found {}",
                show(other)
            )),
        }
    }

    fn host(&mut self, dir: Dir) -> Result<Filter, String> {
        let t = self.next();
        t.and_then(|s| s.parse().ok())
            .map(|a| Filter::Host(dir, a))
            .ok_or_else(|| format!("expected an IPv4 address after host, found {}", show(t)))
    }

    fn port(&mut self, dir: Dir) -> Result<Filter, String> {
        let t = self.next();
        t.and_then(|s| s.parse().ok())
            .map(|p| Filter::Port(dir, p))
            .ok_or_else(|| {
                format!(
                    "expected a port number (0-65535) after port, found {}",
                    show(t)
                )
            })
    }
}

fn show(t: Option<&str>) -> String {
    t.map(|t| format!("{t:?}"))
        .unwrap_or_else(|| "the end".into())
}

/// Header fields a filter can test.
#[derive(Default)]
struct Fields {
    ethertype: u16,
    proto: Option<u8>,
    src: Option<Ipv4Addr>,
    dst: Option<Ipv4Addr>,
    sport: Option<u16>,
    dport: Option<u16>,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn fields(frame: &[u8]) -> Fields {
    let mut f = Fields::default();
    let mut l3 = 14;
    let Some(mut et) = be16(frame, 12) else {
        return f;
    };
    if et == 0x8100 {
        l3 = 18;
        et = be16(frame, 16).unwrap_or(0);
    }
    f.ethertype = et;
    if et != 0x0800 {
        return f;
    }
    let Some(ip) = frame.get(l3..) else {
        return f;
    };
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return f;
    }
    f.proto = Some(ip[9]);
    f.src = Some(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]));
    f.dst = Some(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]));
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    // Ports only from a well-formed header of a first (or only) fragment.
    let frag_offset = be16(ip, 6).unwrap_or(0) & 0x1fff;
    if ip[9] == 6 && ihl >= 20 && frag_offset == 0 {
        f.sport = be16(ip, ihl);
        f.dport = be16(ip, ihl + 2);
    }
    f
}

/// Source, destination or either of a pair of header fields equals `want`.
fn either<T: PartialEq>(d: &Dir, src: Option<T>, dst: Option<T>, want: T) -> bool {
    match d {
        Dir::Any => src.as_ref() == Some(&want) || dst.as_ref() == Some(&want),
        Dir::Src => src == Some(want),
        Dir::Dst => dst == Some(want),
    }
}

impl Filter {
    /// Parses a filter (the words of the command line, joined or not).
    pub fn parse(text: &str) -> Result<Filter, String> {
        let spaced = text.replace('(', " ( ").replace(')', " ) ");
        let toks: Vec<&str> = spaced.split_whitespace().collect();
        if toks.is_empty() {
            return Ok(Filter::All);
        }
        // Matching recurses over the tree: keep it small.
        if toks.len() > MAX_TOKENS {
            return Err(format!(
                "filter too long ({} words, at most {MAX_TOKENS})",
                toks.len()
            ));
        }
        let mut p = Parser {
            toks,
            at: 0,
            depth: 0,
        };
        let f = p.expr()?;
        match p.peek() {
            None => Ok(f),
            Some(t) => Err(format!(
                "unexpected {t:?} after a complete filter (use and/or)"
            )),
        }
    }

    /// Whether `frame` (an Ethernet frame) passes.
    pub fn matches(&self, frame: &[u8]) -> bool {
        self.test(&fields(frame))
    }

    fn test(&self, f: &Fields) -> bool {
        match self {
            Filter::All => true,
            Filter::Tcp => f.proto == Some(6),
            Filter::Icmp => f.proto == Some(1),
            Filter::Arp => f.ethertype == 0x0806,
            Filter::Ip => f.ethertype == 0x0800,
            Filter::Host(d, a) => either(d, f.src, f.dst, *a),
            Filter::Port(d, p) => either(d, f.sport, f.dport, *p),
            Filter::Not(x) => !x.test(f),
            Filter::And(a, b) => a.test(f) && b.test(f),
            Filter::Or(a, b) => a.test(f) || b.test(f),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp_frame(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 54];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[23] = 6;
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f
    }

    #[test]
    fn matches_like_tcpdump() {
        let f = tcp_frame([198, 18, 0, 1], [198, 18, 0, 2], 40000, 7);
        for (expr, want) in [
            ("", true),
            ("tcp", true),
            ("arp", false),
            ("port 7", true),
            ("src port 7", false),
            ("dst port 7 and host 198.18.0.1", true),
            ("tcp and not port 7", false),
            ("arp or (tcp and src host 198.18.0.1)", true),
            ("! tcp || dst host 198.18.0.2", true),
            ("src host 198.18.0.2", false),
        ] {
            assert_eq!(Filter::parse(expr).unwrap().matches(&f), want, "{expr}");
        }
    }

    #[test]
    fn errors_say_what_was_expected() {
        assert!(Filter::parse("port x").unwrap_err().contains("port number"));
        assert!(Filter::parse("host").unwrap_err().contains("IPv4 address"));
        assert!(Filter::parse("(tcp").unwrap_err().contains("expected ')'"));
        assert!(Filter::parse("tcp udp")
            .unwrap_err()
            .contains("after a complete filter"));
        assert!(Filter::parse("udp")
            .unwrap_err()
            .contains("unexpected \"udp\""));
        let deep = format!("{}tcp{}", "(".repeat(100), ")".repeat(100));
        assert!(Filter::parse(&deep).unwrap_err().contains("nested deeper"));
        let nots = "not ".repeat(60) + "tcp";
        assert!(Filter::parse(&nots).is_ok());
        let nots = "not ".repeat(100) + "tcp";
        assert!(Filter::parse(&nots).unwrap_err().contains("nested deeper"));
        let long = "tcp and ".repeat(10_000) + "tcp";
        assert!(Filter::parse(&long).unwrap_err().contains("too long"));
    }

    proptest::proptest! {
        #[test]
        fn any_text_parses_or_errs(text in "[a-z0-9 ().!&|]{0,40}") {
            let _ = Filter::parse(&text);
        }

        #[test]
        fn any_frame_is_safe(frame in proptest::collection::vec(proptest::num::u8::ANY, 0..96)) {
            let f = Filter::parse("tcp and (port 7 or host 1.2.3.4) or not arp").unwrap();
            let _ = f.matches(&frame);
        }
    }

    #[test]
    fn any_bytes_are_safe() {
        let f = Filter::parse("tcp and port 7 or arp").unwrap();
        for len in 0..80 {
            for fill in [0u8, 0x45, 0xff, 0x08] {
                let mut b = vec![fill; len];
                if len > 14 {
                    b[12] = 8;
                    b[13] = 0;
                }
                let _ = f.matches(&b);
            }
        }
    }
}
