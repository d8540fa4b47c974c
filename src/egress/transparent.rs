//! Transparent TCP: a guest program that ignores the proxy variables and
//! connects to the address the egress DNS gave an allowed name.
//!
//! Each such fake address gets a listener in the runner's namespace (made
//! by the runner's [`Factory`] when the name is first resolved) at every
//! port the policy allows the name (80 and 443 for a rule without a
//! port). A connection to it is the name's: decided and relayed as a
//! `CONNECT name:port` through the proxy, its TLS server name checked
//! against the name. Any other port of a fake address refuses at once.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex};

use super::factory::Factory;
use super::policy::Policy;
use super::proxy::EgressProxy;

/// The listeners of fake addresses.
#[derive(Debug)]
pub struct Transparent {
    proxy: EgressProxy,
    policy: Arc<Policy>,
    factory: Arc<Factory>,
    opened: Mutex<HashSet<Ipv4Addr>>,
}

impl Transparent {
    /// Listeners made by `factory`, relaying through `proxy`.
    pub fn new(proxy: EgressProxy, policy: Arc<Policy>, factory: Arc<Factory>) -> Self {
        Self {
            proxy,
            policy,
            factory,
            opened: Mutex::new(HashSet::new()),
        }
    }

    /// Makes `name`'s listeners at `addr`, once; returns when they
    /// listen (so the guest's connect, after the DNS answer, finds them).
    pub async fn open(&self, name: &str, addr: Ipv4Addr) {
        if !self.opened.lock().expect("opened lock").insert(addr) {
            return;
        }
        for port in self.policy.ports_for(name) {
            let factory = self.factory.clone();
            let at = SocketAddrV4::new(addr, port);
            let made = tokio::task::spawn_blocking(move || factory.listener(at)).await;
            let Ok(Ok(listener)) = made else {
                // Without it the guest's connect is refused at once; the
                // proxy still serves the name.
                continue;
            };
            let listening = listener
                .set_nonblocking(true)
                .and_then(|()| tokio::net::TcpListener::from_std(listener));
            if let Ok(listener) = listening {
                tokio::spawn(serve(listener, self.proxy.clone(), name.to_owned(), port));
            }
        }
    }
}

async fn serve(listener: tokio::net::TcpListener, proxy: EgressProxy, name: String, port: u16) {
    while let Ok((guest, _)) = listener.accept().await {
        let (proxy, name) = (proxy.clone(), name.clone());
        tokio::spawn(async move { proxy.transparent(guest, name, port).await });
    }
}
