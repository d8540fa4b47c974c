//! Published ports in the egress mode. libkrun binds a published port
//! where its runner is: inside the wall. The egress process listens on
//! the host port outside and carries each connection in, through a
//! socket the runner's [`Factory`] made inside, to the same port there.
//! Inbound connections are the host's own: no policy, no events.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpSocket};

use super::factory::Factory;

/// Carries connections accepted on `listener` (a host port) to the same
/// port inside the runner's namespace, until the listener fails.
pub async fn forward(listener: TcpListener, port: u16, factory: Arc<Factory>) {
    while let Ok((mut outside, _)) = listener.accept().await {
        let factory = factory.clone();
        tokio::spawn(async move {
            let made = tokio::task::spawn_blocking(move || factory.stream_socket()).await;
            let Ok(Ok(socket)) = made else { return };
            if socket.set_nonblocking(true).is_err() {
                return;
            }
            let inside = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            let Ok(mut inside) = TcpSocket::from_std_stream(socket).connect(inside).await else {
                // No guest server listens yet: the host's client sees
                // its connection closed.
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut outside, &mut inside).await;
        });
    }
}
