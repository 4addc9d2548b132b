//! Packet capture on a lab's links, with libpcap (the `pcap` crate) opened
//! inside the lab's namespace: one VM NIC (its TAP: both directions) or a
//! whole network (its bridge, promiscuous, so frames forwarded between its
//! ports are seen too). Filters are BPF compiled by libpcap; summaries come
//! from `etherparse`; files are classic pcap, written by [`PcapWriter`] to
//! any `Write` (a file, stdout, an HTTP body). A capture only reads: the
//! VMs see nothing of it.

use std::io::Write;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use topology::names::netns_name;
use topology::{NetworkMode, Topology};

pub use topology::capture::{CaptureInfo, Counts, Ended, Limits, Row, Target, TargetError};

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("cannot capture in the lab's namespace (is the lab up?)")]
    Namespace(#[source] crate::net::NetError),
    #[error("cannot capture on {ifname} (is the lab up?)")]
    Open {
        ifname: String,
        #[source]
        source: pcap::Error,
    },
    #[error("invalid capture filter {filter:?}")]
    Filter {
        filter: String,
        #[source]
        source: pcap::Error,
    },
    #[error("capture on {ifname} failed")]
    Read {
        ifname: String,
        #[source]
        source: pcap::Error,
    },
    #[error("cannot write the capture")]
    Write(#[source] std::io::Error),
    #[error("{running} captures are running, the most this server runs at once; stop one first")]
    TooMany { running: usize },
}

/// One captured frame.
pub struct Frame<'a> {
    /// 1, 2, ...
    pub no: u64,
    pub time: SystemTime,
    /// Seconds since the capture started.
    pub elapsed: f64,
    /// Length on the wire (`data` may be shorter: the snap length).
    pub len: u32,
    pub data: &'a [u8],
}

/// An open capture, ready to read.
pub struct Capture {
    cap: pcap::Capture<pcap::Active>,
    ifname: String,
}

/// The namespace a lab's interfaces live in (`None`: the host's).
pub fn namespace_of(t: &Topology) -> Option<String> {
    (t.network_mode == NetworkMode::Isolated).then(|| netns_name(&t.name))
}

impl Capture {
    /// Opens a capture on `ifname` inside namespace `ns`, with a BPF
    /// `filter` (libpcap syntax; refused with libpcap's reason).
    pub fn open(
        ns: Option<&str>,
        ifname: &str,
        filter: Option<&str>,
    ) -> Result<Capture, CaptureError> {
        let (ns, ifname_owned) = (ns.map(str::to_string), ifname.to_string());
        // The packet socket belongs to the namespace of the thread that
        // makes it: a thread of its own enters the lab's namespace.
        let cap = std::thread::spawn(move || -> Result<_, CaptureError> {
            crate::net::enter_namespace(ns.as_deref()).map_err(CaptureError::Namespace)?;
            let open = |source| CaptureError::Open {
                ifname: ifname_owned.clone(),
                source,
            };
            pcap::Capture::from_device(ifname_owned.as_str())
                .map_err(open)?
                .promisc(true)
                .snaplen(65_535)
                .immediate_mode(true)
                .timeout(100)
                .buffer_size(8 << 20)
                .open()
                .map_err(open)
        })
        .join()
        .expect("the capture thread does not panic")?;
        let mut c = Capture {
            cap,
            ifname: ifname.to_string(),
        };
        if let Some(f) = filter.filter(|f| !f.trim().is_empty()) {
            c.cap
                .filter(f, true)
                .map_err(|source| CaptureError::Filter {
                    filter: f.to_string(),
                    source,
                })?;
        }
        Ok(c)
    }

    /// Reads frames into `each` until a limit is reached, `stop` is set,
    /// or `each` returns false (stopped). Returns why it ended and the
    /// counts.
    pub fn run(
        &mut self,
        limits: Limits,
        stop: &AtomicBool,
        each: &mut dyn FnMut(&Frame) -> Result<bool, CaptureError>,
    ) -> Result<(Ended, Counts), CaptureError> {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(limits.seconds);
        let mut counts = Counts::default();
        let ended = loop {
            if stop.load(Ordering::Relaxed) {
                break Ended::Stopped;
            }
            if counts.captured >= limits.packets {
                break Ended::PacketLimit;
            }
            if counts.bytes >= limits.bytes {
                break Ended::ByteLimit;
            }
            if Instant::now() >= deadline {
                break Ended::TimeLimit;
            }
            match self.cap.next_packet() {
                Ok(p) => {
                    counts.captured += 1;
                    counts.bytes += u64::from(p.header.caplen);
                    let ts = p.header.ts;
                    let time =
                        UNIX_EPOCH + Duration::new(ts.tv_sec as u64, (ts.tv_usec as u32) * 1000);
                    let frame = Frame {
                        no: counts.captured,
                        time,
                        elapsed: started.elapsed().as_secs_f64(),
                        len: p.header.len,
                        data: p.data,
                    };
                    if !each(&frame)? {
                        break Ended::Stopped;
                    }
                }
                Err(pcap::Error::TimeoutExpired) => {}
                // The interface is gone (its lab went down).
                Err(pcap::Error::PcapError(e))
                    if e.contains("went down") || e.contains("No such device") =>
                {
                    break Ended::InterfaceGone
                }
                Err(source) => {
                    return Err(CaptureError::Read {
                        ifname: self.ifname.clone(),
                        source,
                    })
                }
            }
        };
        if let Ok(s) = self.cap.stats() {
            counts.dropped = u64::from(s.dropped) + u64::from(s.if_dropped);
        }
        Ok((ended, counts))
    }
}

/// A classic pcap file (microsecond timestamps, Ethernet), written as
/// frames come: readable by tcpdump, tshark and Wireshark, also while it
/// grows (`-w - | wireshark -k -i -`).
pub struct PcapWriter<W: Write> {
    w: W,
}

/// The pcap magic number, version 2.4.
const PCAP_MAGIC: u32 = 0xa1b2_c3d4;
const LINKTYPE_ETHERNET: u32 = 1;

impl<W: Write> PcapWriter<W> {
    pub fn new(mut w: W) -> std::io::Result<Self> {
        let mut h = Vec::with_capacity(24);
        h.extend(PCAP_MAGIC.to_le_bytes());
        h.extend(2u16.to_le_bytes());
        h.extend(4u16.to_le_bytes());
        h.extend(0i32.to_le_bytes()); // timezone
        h.extend(0u32.to_le_bytes()); // accuracy
        h.extend(65_535u32.to_le_bytes()); // snap length
        h.extend(LINKTYPE_ETHERNET.to_le_bytes());
        w.write_all(&h)?;
        w.flush()?;
        Ok(PcapWriter { w })
    }

    pub fn write(&mut self, time: SystemTime, data: &[u8], len: u32) -> std::io::Result<()> {
        let t = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let mut r = Vec::with_capacity(16 + data.len());
        r.extend((t.as_secs() as u32).to_le_bytes());
        r.extend(t.subsec_micros().to_le_bytes());
        r.extend((data.len() as u32).to_le_bytes());
        r.extend(len.to_le_bytes());
        r.extend(data);
        self.w.write_all(&r)
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }

    pub fn into_inner(self) -> W {
        self.w
    }
}

/// One frame as a packet table shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub source: String,
    pub destination: String,
    pub protocol: String,
    pub info: String,
}

fn mac(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// What a frame is, in a line: addresses, protocol and the few fields that
/// tell what it does (tcpdump's way).
pub fn summarize(data: &[u8]) -> Summary {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    if data.len() < 14 {
        return Summary {
            source: String::new(),
            destination: String::new(),
            protocol: "?".into(),
            info: format!("truncated frame of {} bytes", data.len()),
        };
    }
    let (dst_mac, src_mac) = (mac(&data[0..6]), mac(&data[6..12]));
    let ethertype = u16::from_be_bytes([data[12], data[13]]);
    if ethertype == 0x0806 && data.len() >= 42 {
        let a = &data[14..42];
        let op = u16::from_be_bytes([a[6], a[7]]);
        let sender = Ipv4Addr::new(a[14], a[15], a[16], a[17]);
        let target = Ipv4Addr::new(a[24], a[25], a[26], a[27]);
        let info = match op {
            1 => format!("who has {target}? tell {sender}"),
            2 => format!("{sender} is at {}", mac(&a[8..14])),
            _ => format!("operation {op}"),
        };
        return Summary {
            source: src_mac,
            destination: dst_mac,
            protocol: "ARP".into(),
            info,
        };
    }
    let Ok(p) = SlicedPacket::from_ethernet(data) else {
        return Summary {
            source: src_mac,
            destination: dst_mac,
            protocol: format!("0x{ethertype:04x}"),
            info: format!("ethertype 0x{ethertype:04x}"),
        };
    };
    let (source, destination, ip_proto) = match &p.net {
        Some(NetSlice::Ipv4(ip)) => (
            ip.header().source_addr().to_string(),
            ip.header().destination_addr().to_string(),
            ip.header().protocol().0,
        ),
        Some(NetSlice::Ipv6(ip)) => (
            ip.header().source_addr().to_string(),
            ip.header().destination_addr().to_string(),
            ip.header().next_header().0,
        ),
        None => {
            return Summary {
                source: src_mac,
                destination: dst_mac,
                protocol: format!("0x{ethertype:04x}"),
                info: format!("ethertype 0x{ethertype:04x}"),
            }
        }
    };
    let (protocol, info) = match &p.transport {
        Some(TransportSlice::Icmpv4(icmp)) => {
            let b = icmp.slice();
            let id_seq = || {
                (b.len() >= 8).then(|| {
                    (
                        u16::from_be_bytes([b[4], b[5]]),
                        u16::from_be_bytes([b[6], b[7]]),
                    )
                })
            };
            let info = match (icmp.type_u8(), id_seq()) {
                (8, Some((id, seq))) => format!("echo request id={id} seq={seq}"),
                (0, Some((id, seq))) => format!("echo reply id={id} seq={seq}"),
                (3, _) => format!("destination unreachable (code {})", icmp.code_u8()),
                (11, _) => "time exceeded".to_string(),
                (t, _) => format!("type {t} code {}", icmp.code_u8()),
            };
            ("ICMP".to_string(), info)
        }
        Some(TransportSlice::Icmpv6(icmp)) => (
            "ICMPv6".to_string(),
            format!("type {} code {}", icmp.type_u8(), icmp.code_u8()),
        ),
        Some(TransportSlice::Udp(u)) => (
            "UDP".to_string(),
            format!(
                "{} → {} len={}",
                u.source_port(),
                u.destination_port(),
                u.payload().len()
            ),
        ),
        Some(TransportSlice::Tcp(t)) => {
            let flags: String = [
                (t.syn(), 'S'),
                (t.fin(), 'F'),
                (t.rst(), 'R'),
                (t.psh(), 'P'),
                (t.ack(), '.'),
            ]
            .into_iter()
            .filter_map(|(on, c)| on.then_some(c))
            .collect();
            (
                "TCP".to_string(),
                format!(
                    "{} → {} [{flags}] seq={} win={} len={}",
                    t.source_port(),
                    t.destination_port(),
                    t.sequence_number(),
                    t.window_size(),
                    t.payload().len()
                ),
            )
        }
        None => (format!("IP proto {ip_proto}"), String::new()),
    };
    Summary {
        source,
        destination,
        protocol,
        info,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet frame carrying an ICMP echo request 10.0.0.1 → 10.0.0.2.
    fn echo_request() -> Vec<u8> {
        let builder = etherparse::PacketBuilder::ethernet2(
            [0x52, 0x54, 0, 0, 0, 1],
            [0x52, 0x54, 0, 0, 0, 2],
        )
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .icmpv4_echo_request(7, 3);
        let mut out = Vec::new();
        builder.write(&mut out, b"ping").unwrap();
        out
    }

    #[test]
    fn an_echo_request_is_summarized_as_tcpdump_would() {
        let s = summarize(&echo_request());
        assert_eq!(
            s,
            Summary {
                source: "10.0.0.1".into(),
                destination: "10.0.0.2".into(),
                protocol: "ICMP".into(),
                info: "echo request id=7 seq=3".into(),
            }
        );
    }

    #[test]
    fn an_arp_request_and_a_runt_are_summarized() {
        let mut arp = vec![0xff; 6];
        arp.extend([0x52, 0x54, 0, 0, 0, 1, 0x08, 0x06]);
        arp.extend([0, 1, 8, 0, 6, 4, 0, 1]);
        arp.extend([0x52, 0x54, 0, 0, 0, 1, 10, 0, 0, 1]);
        arp.extend([0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
        let s = summarize(&arp);
        assert_eq!(s.protocol, "ARP");
        assert_eq!(s.info, "who has 10.0.0.2? tell 10.0.0.1");
        assert_eq!(summarize(&[1, 2, 3]).protocol, "?");
    }

    #[test]
    fn the_pcap_file_has_the_classic_header_and_one_record_per_frame() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        let frame = echo_request();
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 250_000_000);
        w.write(t, &frame, frame.len() as u32).unwrap();
        let b = w.into_inner();
        assert_eq!(&b[0..4], &[0xd4, 0xc3, 0xb2, 0xa1]);
        assert_eq!(u32::from_le_bytes(b[20..24].try_into().unwrap()), 1);
        assert_eq!(
            u32::from_le_bytes(b[24..28].try_into().unwrap()),
            1_700_000_000
        );
        assert_eq!(u32::from_le_bytes(b[28..32].try_into().unwrap()), 250_000);
        assert_eq!(b.len(), 24 + 16 + frame.len());
    }

    #[test]
    fn targets_are_a_nic_or_a_network_of_the_lab() {
        let t = topology::parse_and_validate(topology::examples::ROUTER, topology::Format::Yaml)
            .unwrap();
        assert_eq!(
            Target::parse(&t, "h1:eth0").unwrap(),
            Target::Nic {
                vm: "h1".into(),
                nic: 0
            }
        );
        assert!(matches!(
            Target::parse(&t, "h1:eth5"),
            Err(TargetError::NoNic { .. })
        ));
        assert!(Target::parse(&t, "nowhere").is_err());
        let net = &t.networks[0].name;
        assert_eq!(
            Target::parse(&t, net).unwrap().ifname(&t.name),
            topology::names::bridge_ifname(&t.name, net)
        );
    }
}
