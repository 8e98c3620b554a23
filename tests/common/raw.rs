//! A minimal hand-written P2P client (plain TCP, v1 framing from the `bitcoin` crate) to check
//! exactly what the regtest peer sends.

use std::net::SocketAddr;

use bitcoin::consensus::encode::{deserialize, serialize};
use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::{NetworkMessage, RawNetworkMessage};
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::p2p::ServiceFlags;
use bitcoin::Network;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::TIMEOUT;

/// A raw P2P connection.
pub struct RawPeer {
    stream: TcpStream,
    next_ping: u64,
}

impl RawPeer {
    /// Connects without handshaking.
    pub async fn connect(addr: SocketAddr) -> RawPeer {
        let stream = TcpStream::connect(addr)
            .await
            .expect("connect to the regtest peer");
        RawPeer {
            stream,
            next_ping: 1000,
        }
    }

    /// Sends a message.
    pub async fn send(&mut self, message: NetworkMessage) {
        let bytes = serialize(&RawNetworkMessage::new(Network::Regtest.magic(), message));
        self.stream.write_all(&bytes).await.expect("write");
    }

    /// Receives the next message, or `None` when the peer closed the connection.
    pub async fn try_recv(&mut self) -> Option<NetworkMessage> {
        let read = async {
            let mut header = [0u8; 24];
            self.stream.read_exact(&mut header).await.ok()?;
            let length = u32::from_le_bytes([header[16], header[17], header[18], header[19]]);
            let mut bytes = header.to_vec();
            bytes.resize(24 + length as usize, 0);
            self.stream.read_exact(&mut bytes[24..]).await.ok()?;
            let raw: RawNetworkMessage = deserialize(&bytes).expect("well-formed message");
            assert_eq!(*raw.magic(), Network::Regtest.magic());
            Some(raw.into_payload())
        };
        tokio::time::timeout(TIMEOUT, read)
            .await
            .expect("timed out waiting for a message from the regtest peer")
    }

    /// Receives the next message; panics if the connection closed.
    pub async fn recv(&mut self) -> NetworkMessage {
        self.try_recv()
            .await
            .expect("the regtest peer closed the connection")
    }

    /// Receives until `pick` returns something, skipping other messages.
    pub async fn recv_until<T>(&mut self, mut pick: impl FnMut(&NetworkMessage) -> Option<T>) -> T {
        loop {
            let message = self.recv().await;
            if let Some(found) = pick(&message) {
                return found;
            }
        }
    }

    /// Sends a ping and returns every message received before its pong. Because the peer
    /// answers in order, this shows everything it sent in reply to earlier requests.
    pub async fn sync(&mut self) -> Vec<NetworkMessage> {
        self.next_ping += 1;
        let nonce = self.next_ping;
        self.send(NetworkMessage::Ping(nonce)).await;
        let mut before = Vec::new();
        loop {
            match self.recv().await {
                NetworkMessage::Pong(n) if n == nonce => return before,
                other => before.push(other),
            }
        }
    }

    /// Whether the peer closes the connection (reading and dropping messages until it does).
    pub async fn closed_by_peer(&mut self) -> bool {
        let wait = async { while self.try_recv().await.is_some() {} };
        tokio::time::timeout(TIMEOUT, wait).await.is_ok()
    }

    /// A version message like a recent client's.
    pub fn version_message(relay: bool) -> VersionMessage {
        let nowhere: SocketAddr = "127.0.0.1:0".parse().unwrap();
        VersionMessage {
            version: 70016,
            services: ServiceFlags::NONE,
            timestamp: 0,
            receiver: Address::new(&nowhere, ServiceFlags::NONE),
            sender: Address::new(&nowhere, ServiceFlags::NONE),
            nonce: 7,
            user_agent: "/raw-test/".into(),
            start_height: 0,
            relay,
        }
    }

    /// Does the version handshake and answers the peer's first ping, so later replies start
    /// clean.
    pub async fn handshake(&mut self, relay: bool) -> Handshake {
        self.send(NetworkMessage::Version(Self::version_message(relay)))
            .await;
        let version = match self.recv().await {
            NetworkMessage::Version(version) => version,
            other => panic!("expected version first, got {other:?}"),
        };
        let mut before_verack = Vec::new();
        loop {
            match self.recv().await {
                NetworkMessage::Verack => break,
                other => before_verack.push(other),
            }
        }
        self.send(NetworkMessage::WtxidRelay).await;
        self.send(NetworkMessage::Verack).await;
        let after_verack = self.sync().await;
        for message in &after_verack {
            if let NetworkMessage::Ping(nonce) = message {
                self.send(NetworkMessage::Pong(*nonce)).await;
            }
        }
        Handshake {
            version,
            before_verack,
            after_verack,
        }
    }
}

/// What the peer sent during the handshake.
pub struct Handshake {
    /// Its version message.
    pub version: VersionMessage,
    /// Messages between its version and its verack.
    pub before_verack: Vec<NetworkMessage>,
    /// Messages right after the handshake completed.
    pub after_verack: Vec<NetworkMessage>,
}
