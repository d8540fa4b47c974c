//! The guest's DNS server in the egress mode: allowed names resolve to
//! addresses of krunbox's own; nothing else resolves.
//!
//! - A question for a name the policy lets the guest resolve is answered
//!   with a *fake* IPv4 address from 198.18.0.0/15, one per name for the
//!   VM's life ([`FakeNames`]): the guest never learns a real address, and
//!   a connection to the fake one maps back to exactly one name. `AAAA`
//!   and other types get an empty answer (the guest has no IPv6 out).
//! - Any other name gets `NXDOMAIN`, at once; no query leaves the host.
//! - Each `A` question, and each denied one, becomes an [`EgressEvent`].
//!
//! The wire format is `simple-dns`'s; a packet it cannot parse is dropped,
//! as resolvers expect of garbage.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};

use simple_dns::rdata::{RData, A};
use simple_dns::{Packet, PacketFlag, ResourceRecord, CLASS, QTYPE, RCODE, TYPE};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::events::{EgressEvent, Via};
use super::netns::{DNS_PORT, GATEWAY};
use super::policy::Policy;
use super::transparent::Transparent;

/// How long a guest may cache an answer: the fake address of a name
/// never changes while the VM lives.
pub const TTL_SECS: u32 = 3600;
/// At most this many names get addresses; later ones are refused.
pub const MAX_NAMES: usize = 16384;

/// The fake addresses handed out: 198.18.1.0 onwards (198.18.0.0/24 is
/// krunbox's own: the gateway).
#[derive(Debug, Default)]
pub struct FakeNames {
    by_name: HashMap<String, Ipv4Addr>,
    by_addr: HashMap<Ipv4Addr, String>,
}

impl FakeNames {
    /// The address of `name`, given one if it has none yet; `None` once
    /// [`MAX_NAMES`] are given.
    pub fn address_of(&mut self, name: &str) -> Option<Ipv4Addr> {
        if let Some(addr) = self.by_name.get(name) {
            return Some(*addr);
        }
        if self.by_name.len() >= MAX_NAMES {
            return None;
        }
        let index = 256 + self.by_name.len() as u32;
        let addr = Ipv4Addr::from(u32::from(GATEWAY) - 1 + index);
        self.by_name.insert(name.to_owned(), addr);
        self.by_addr.insert(addr, name.to_owned());
        Some(addr)
    }

    /// The name `addr` was given to, if any.
    pub fn name_of(&self, addr: Ipv4Addr) -> Option<&str> {
        self.by_addr.get(&addr).map(String::as_str)
    }
}

/// An allowed name and the address it was answered with.
type Answered = (String, Ipv4Addr);

/// The DNS server: a policy, the names handed out, where events go.
#[derive(Debug, Clone)]
pub struct DnsServer {
    policy: Arc<Policy>,
    names: Arc<Mutex<FakeNames>>,
    events: mpsc::UnboundedSender<EgressEvent>,
    transparent: Option<Arc<Transparent>>,
}

impl DnsServer {
    /// A server for `policy`, sharing `names` (with the transparent
    /// listeners that map addresses back) and sending its events.
    pub fn new(
        policy: Arc<Policy>,
        names: Arc<Mutex<FakeNames>>,
        events: mpsc::UnboundedSender<EgressEvent>,
    ) -> Self {
        Self {
            policy,
            names,
            events,
            transparent: None,
        }
    }

    /// Opens `transparent`'s listeners for each name before its address
    /// is answered.
    pub fn with_transparent(mut self, transparent: Arc<Transparent>) -> Self {
        self.transparent = Some(transparent);
        self
    }

    /// Answers datagrams on `socket` until it fails.
    pub async fn serve(self, socket: UdpSocket) -> std::io::Result<()> {
        let mut buf = vec![0u8; 4096];
        loop {
            let (len, from) = socket.recv_from(&mut buf).await?;
            let Some((reply, answered)) = self.respond(&buf[..len]) else {
                continue;
            };
            if let (Some(transparent), Some((name, addr))) = (&self.transparent, answered) {
                transparent.open(&name, addr).await;
            }
            // A guest that left does not stop the server.
            let _ = socket.send_to(&reply, from).await;
        }
    }

    /// The reply to one query, or `None` for a packet to drop.
    pub fn answer(&self, query: &[u8]) -> Option<Vec<u8>> {
        self.respond(query).map(|(reply, _)| reply)
    }

    /// The reply, and the allowed name and its address if it gave one.
    fn respond(&self, query: &[u8]) -> Option<(Vec<u8>, Option<Answered>)> {
        let query = Packet::parse(query).ok()?;
        if query.has_flags(PacketFlag::RESPONSE) {
            return None;
        }
        let mut reply = Packet::new_reply(query.id());
        reply.set_flags(PacketFlag::RECURSION_AVAILABLE);
        if query.has_flags(PacketFlag::RECURSION_DESIRED) {
            reply.set_flags(PacketFlag::RECURSION_DESIRED);
        }
        let [question] = query.questions.as_slice() else {
            *reply.rcode_mut() = RCODE::FormatError;
            return Some((reply.build_bytes_vec().ok()?, None));
        };
        reply.questions.push(question.clone());
        let name = question
            .qname
            .to_string()
            .trim_end_matches('.')
            .to_lowercase();
        let asks_a = matches!(question.qtype, QTYPE::TYPE(TYPE::A) | QTYPE::ANY);
        let allowed = self.policy.may_resolve(&name);
        let addr = match allowed {
            true => self.names.lock().expect("names lock").address_of(&name),
            false => None,
        };
        *reply.rcode_mut() = match (allowed, addr) {
            (false, _) => RCODE::NameError,
            (true, None) => RCODE::Refused,
            (true, Some(_)) => RCODE::NoError,
        };
        if let (Some(addr), true) = (addr, asks_a) {
            reply.answers.push(ResourceRecord::new(
                question.qname.clone(),
                CLASS::IN,
                TTL_SECS,
                RData::A(A::from(addr)),
            ));
        }
        let asks_aaaa = question.qtype == QTYPE::TYPE(TYPE::AAAA);
        if asks_a || (!allowed && !asks_aaaa) {
            self.record(name.clone(), addr, allowed);
        }
        let answered = addr.map(|addr| (name, addr));
        Some((reply.build_bytes_vec().ok()?, answered))
    }

    fn record(&self, name: String, addr: Option<Ipv4Addr>, allowed: bool) {
        let nowhere = super::policy::Destination {
            name: Some(name),
            addr: addr.map(IpAddr::V4),
            port: DNS_PORT,
        };
        let mut event = EgressEvent::refused(Via::Dns, "");
        event.name = nowhere.name;
        event.addr = nowhere.addr;
        event.port = nowhere.port;
        event.allowed = allowed;
        event.reason = match (allowed, addr) {
            (true, Some(_)) => "resolved to its krunbox address".to_owned(),
            (true, None) => format!("refused: more than {MAX_NAMES} names"),
            (false, _) => "denied: no rule allows the name (NXDOMAIN)".to_owned(),
        };
        let _ = self.events.send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use simple_dns::{Name, Question, QCLASS};

    fn server(rules: &[&str]) -> (DnsServer, mpsc::UnboundedReceiver<EgressEvent>) {
        let policy = Policy::new(rules.iter().map(|r| r.parse().unwrap()));
        let (tx, rx) = mpsc::unbounded_channel();
        let names = Arc::new(Mutex::new(FakeNames::default()));
        (DnsServer::new(Arc::new(policy), names, tx), rx)
    }

    fn query(name: &str, qtype: TYPE) -> Vec<u8> {
        let mut packet = Packet::new_query(0x1234);
        packet.set_flags(PacketFlag::RECURSION_DESIRED);
        packet.questions.push(Question::new(
            Name::new_unchecked(name),
            qtype.into(),
            QCLASS::CLASS(CLASS::IN),
            false,
        ));
        packet.build_bytes_vec().unwrap()
    }

    fn addresses(reply: &[u8]) -> (RCODE, Vec<Ipv4Addr>) {
        let packet = Packet::parse(reply).unwrap();
        assert_eq!(packet.id(), 0x1234);
        let addrs = packet
            .answers
            .iter()
            .filter_map(|rr| match &rr.rdata {
                RData::A(a) => Some(Ipv4Addr::from(a.address)),
                _ => None,
            })
            .collect();
        (packet.rcode(), addrs)
    }

    #[test]
    fn allowed_names_get_stable_fake_addresses_and_others_nxdomain() {
        let (dns, mut events) = server(&["pypi.org:443", "*.npmjs.org"]);
        let (rcode, first) = addresses(&dns.answer(&query("PyPI.org.", TYPE::A)).unwrap());
        assert_eq!(rcode, RCODE::NoError);
        assert_eq!(first, [Ipv4Addr::new(198, 18, 1, 0)]);
        let (_, again) = addresses(&dns.answer(&query("pypi.org", TYPE::A)).unwrap());
        assert_eq!(again, first, "one name, one address");
        let (_, other) = addresses(&dns.answer(&query("registry.npmjs.org", TYPE::A)).unwrap());
        assert_eq!(other, [Ipv4Addr::new(198, 18, 1, 1)]);
        let (rcode, v6) = addresses(&dns.answer(&query("pypi.org", TYPE::AAAA)).unwrap());
        assert_eq!((rcode, v6.len()), (RCODE::NoError, 0), "no IPv6 answer");
        for denied in ["example.com", "npmjs.org", "pypi.org.evil.com"] {
            let (rcode, addrs) = addresses(&dns.answer(&query(denied, TYPE::A)).unwrap());
            assert_eq!((rcode, addrs.len()), (RCODE::NameError, 0), "{denied}");
        }
        let recorded: Vec<_> = std::iter::from_fn(|| events.try_recv().ok()).collect();
        let shown: Vec<_> = recorded
            .iter()
            .map(|e| (e.name.clone().unwrap(), e.allowed))
            .collect();
        assert_eq!(
            shown,
            [
                ("pypi.org".to_owned(), true),
                ("pypi.org".to_owned(), true),
                ("registry.npmjs.org".to_owned(), true),
                ("example.com".to_owned(), false),
                ("npmjs.org".to_owned(), false),
                ("pypi.org.evil.com".to_owned(), false),
            ]
        );
        assert!(recorded.iter().all(|e| e.via == Via::Dns));
        let names = dns.names.lock().unwrap();
        assert_eq!(
            names.name_of(Ipv4Addr::new(198, 18, 1, 1)),
            Some("registry.npmjs.org")
        );
    }

    #[test]
    fn garbage_is_dropped_and_odd_queries_refused() {
        let (dns, _events) = server(&["pypi.org"]);
        assert!(dns.answer(b"").is_none());
        assert!(dns.answer(&[0xff; 11]).is_none());
        let one = query("pypi.org", TYPE::A);
        let mut two = Packet::parse(&one).unwrap();
        two.questions.push(two.questions[0].clone());
        let (rcode, addrs) = addresses(&dns.answer(&two.build_bytes_vec().unwrap()).unwrap());
        assert_eq!((rcode, addrs.len()), (RCODE::FormatError, 0));
    }
}
