//! Bitcoin P2P v1 framing on regtest: a 24-byte header (magic, command, length, checksum)
//! followed by the payload.

use bitcoin::consensus::encode::{deserialize, serialize};
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::p2p::message::{NetworkMessage, RawNetworkMessage};
use bitcoin::p2p::Magic;
use bitcoin::Network;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Core's limit on a single message (`MAX_PROTOCOL_MESSAGE_LENGTH`).
const MAX_MESSAGE_BYTES: u32 = 4_000_000;
const HEADER_BYTES: usize = 24;
/// Room reserved for a payload before its bytes arrive; it grows with what is received.
const INITIAL_PAYLOAD_BYTES: usize = 4096;

/// Why a connection's byte stream cannot be read further.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The socket failed or closed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The stream is not regtest P2P v1 (another network, or an encrypted v2 handshake).
    #[error("unexpected network magic {0} (not regtest P2P v1)")]
    WrongMagic(Magic),
    /// A message longer than the protocol allows.
    #[error("message of {0} bytes exceeds the protocol limit")]
    TooLarge(u32),
}

/// The regtest network magic.
pub fn magic() -> Magic {
    Network::Regtest.magic()
}

/// Serializes a message with its header.
pub fn encode(message: NetworkMessage) -> Vec<u8> {
    serialize(&RawNetworkMessage::new(magic(), message))
}

/// Frames an already serialized payload (used for blocks, to avoid copying them).
pub fn encode_raw(command: &str, payload: &[u8]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(HEADER_BYTES + payload.len());
    bytes.extend_from_slice(&magic().to_bytes());
    let mut name = [0u8; 12];
    name[..command.len()].copy_from_slice(command.as_bytes());
    bytes.extend_from_slice(&name);
    bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    let checksum = sha256d::Hash::hash(payload);
    bytes.extend_from_slice(&checksum.as_byte_array()[..4]);
    bytes.extend_from_slice(payload);
    bytes
}

/// Reads one message. The outer error ends the connection; the inner one is a message that
/// could not be decoded (bad checksum or payload) and is skipped. Also returns the bytes read.
pub async fn read_message<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<(Result<NetworkMessage, String>, usize), WireError> {
    let mut header = [0u8; HEADER_BYTES];
    reader.read_exact(&mut header).await?;
    let found = Magic::from_bytes([header[0], header[1], header[2], header[3]]);
    if found != magic() {
        return Err(WireError::WrongMagic(found));
    }
    let length = u32::from_le_bytes([header[16], header[17], header[18], header[19]]);
    if length > MAX_MESSAGE_BYTES {
        return Err(WireError::TooLarge(length));
    }
    // The payload is taken as it arrives: a header alone declaring 4 MB costs nothing, and a
    // sender pays with its own bandwidth for every byte held here.
    let mut bytes = Vec::with_capacity(HEADER_BYTES + (length as usize).min(INITIAL_PAYLOAD_BYTES));
    bytes.extend_from_slice(&header);
    let read = (&mut *reader)
        .take(u64::from(length))
        .read_to_end(&mut bytes)
        .await?;
    if read < length as usize {
        return Err(WireError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    let decoded = deserialize::<RawNetworkMessage>(&bytes)
        .map(RawNetworkMessage::into_payload)
        .map_err(|error| error.to_string());
    Ok((decoded, bytes.len()))
}
