//! Bitcoin P2P v1 framing: a 24-byte header (network magic, command, payload length,
//! checksum) and the payload, read within the protocol's size limit.

use bitcoin::consensus::encode::{deserialize, serialize};
use bitcoin::p2p::message::{NetworkMessage, RawNetworkMessage};
use bitcoin::p2p::Magic;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bitcoin Core's limit on one message (`MAX_PROTOCOL_MESSAGE_LENGTH`): a block fits.
const MAX_PAYLOAD_BYTES: u32 = 4_000_000;
const HEADER_BYTES: usize = 24;
/// Room reserved for a payload before it arrives; it grows as bytes come in, so a header
/// declaring 4 MB costs nothing until the peer sends them.
const INITIAL_PAYLOAD_BYTES: usize = 64 * 1024;

/// Why a connection's byte stream cannot be read further.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The socket failed or closed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The stream belongs to another network, or is not P2P v1.
    #[error("unexpected network magic {0}")]
    WrongMagic(Magic),
    /// A message longer than the protocol allows.
    #[error("a message of {0} bytes exceeds the protocol limit")]
    TooLarge(u32),
    /// A message whose checksum or payload does not decode.
    #[error("undecodable message: {0}")]
    Undecodable(String),
}

/// Reads one message of network `magic`.
pub async fn read_message<R: AsyncRead + Unpin>(
    reader: &mut R,
    magic: Magic,
) -> Result<NetworkMessage, WireError> {
    let mut header = [0u8; HEADER_BYTES];
    reader.read_exact(&mut header).await?;
    let found = Magic::from_bytes([header[0], header[1], header[2], header[3]]);
    if found != magic {
        return Err(WireError::WrongMagic(found));
    }
    let length = u32::from_le_bytes([header[16], header[17], header[18], header[19]]);
    if length > MAX_PAYLOAD_BYTES {
        return Err(WireError::TooLarge(length));
    }
    let mut bytes = Vec::with_capacity(HEADER_BYTES + (length as usize).min(INITIAL_PAYLOAD_BYTES));
    bytes.extend_from_slice(&header);
    let read = (&mut *reader)
        .take(u64::from(length))
        .read_to_end(&mut bytes)
        .await?;
    if read < length as usize {
        return Err(WireError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    deserialize::<RawNetworkMessage>(&bytes)
        .map(RawNetworkMessage::into_payload)
        .map_err(|err| WireError::Undecodable(err.to_string()))
}

/// Writes one message of network `magic`.
pub async fn write_message<W: AsyncWrite + Unpin>(
    writer: &mut W,
    magic: Magic,
    message: NetworkMessage,
) -> Result<(), WireError> {
    let bytes = serialize(&RawNetworkMessage::new(magic, message));
    writer.write_all(&bytes).await?;
    writer.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::Network;

    #[tokio::test]
    async fn a_message_round_trips_and_another_networks_is_refused() {
        let magic = Network::Regtest.magic();
        let mut bytes = Vec::new();
        write_message(&mut bytes, magic, NetworkMessage::Ping(7))
            .await
            .unwrap();
        let read = read_message(&mut bytes.as_slice(), magic).await.unwrap();
        assert_eq!(read, NetworkMessage::Ping(7));
        let refused = read_message(&mut bytes.as_slice(), Network::Bitcoin.magic()).await;
        assert!(matches!(refused, Err(WireError::WrongMagic(_))));
    }

    #[tokio::test]
    async fn a_header_declaring_more_than_the_limit_is_refused_before_its_payload() {
        let magic = Network::Regtest.magic();
        let mut header = Vec::new();
        header.extend_from_slice(&magic.to_bytes());
        header.extend_from_slice(b"block\0\0\0\0\0\0\0");
        header.extend_from_slice(&(MAX_PAYLOAD_BYTES + 1).to_le_bytes());
        header.extend_from_slice(&[0; 4]);
        let refused = read_message(&mut header.as_slice(), magic).await;
        assert!(matches!(refused, Err(WireError::TooLarge(_))));
    }
}
