//! Syntax of what users type: `pubkey@host:port`, public keys, channel ids, hashes and
//! transaction ids here, and amounts and fee rates from [`crate::units`] (re-exported, so the
//! CLI finds all of it in one place). The CLI uses these to refuse bad input before contacting
//! the daemon; the server uses them again because anyone holding the token may call it
//! directly. Meaning (is this invoice for our network, does this channel exist) is the node's
//! business.

use std::str::FromStr;

use bitcoin::secp256k1::PublicKey;

pub use crate::node::ChannelRef;
pub use crate::units::{
    check_msat, check_sat, parse_base_fee_msat, parse_fee_rate, parse_fee_rate_sat_per_vb,
    parse_msat, parse_sat, ParseError, MAX_MONEY_MSAT, MAX_MONEY_SAT,
};

/// A node's public key: 66 hex digits of a valid compressed point.
pub fn parse_node_id(text: &str) -> Result<PublicKey, ParseError> {
    const WHAT: &str = "node id";
    if text.len() != 66 || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(ParseError::new(
            WHAT,
            text,
            "expected 66 hex digits (a compressed public key)",
        ));
    }
    PublicKey::from_str(text)
        .map_err(|_| ParseError::new(WHAT, text, "not a valid public key (not on the curve)"))
}

/// A `host:port` address: a host (name, IPv4, or IPv6 in brackets) and a port from 1 to 65535.
pub fn parse_host_port(text: &str) -> Result<String, ParseError> {
    const WHAT: &str = "address";
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| ParseError::new(WHAT, text, "expected host:port"))?;
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|ip| ip.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty()
            && !host.contains(':')
            && host
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'.' || byte == b'-')
    };
    if !host_ok {
        return Err(ParseError::new(
            WHAT,
            text,
            "expected host:port (IPv6 hosts in brackets, e.g. [::1]:9735)",
        ));
    }
    match port.parse::<u16>() {
        Ok(port) if port > 0 => Ok(text.to_string()),
        _ => Err(ParseError::new(
            WHAT,
            text,
            "the port must be a number from 1 to 65535",
        )),
    }
}

/// `pubkey@host:port`.
pub fn parse_peer_uri(text: &str) -> Result<(PublicKey, String), ParseError> {
    let (node_id, address) = text.split_once('@').ok_or_else(|| {
        ParseError::new(
            "peer",
            text,
            "expected <pubkey>@<host>:<port>, e.g. 02ab…@127.0.0.1:9735",
        )
    })?;
    Ok((parse_node_id(node_id)?, parse_host_port(address)?))
}

/// A channel id: 64 hex digits, returned in lowercase.
pub fn parse_channel_id(text: &str) -> Result<String, ParseError> {
    if text.len() != 64 || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(ParseError::new(
            "channel id",
            text,
            "expected 64 hex digits, as `channels` shows",
        ));
    }
    Ok(text.to_ascii_lowercase())
}

/// A short channel id as `BLOCKxTXxOUTPUT` (e.g. `103x1x0`), as an integer.
pub fn parse_short_channel_id(text: &str) -> Result<u64, ParseError> {
    const WHAT: &str = "short channel id";
    let parts: Vec<&str> = text.split('x').collect();
    let bad = || ParseError::new(WHAT, text, "expected BLOCKxTXxOUTPUT, e.g. 103x1x0");
    let [block, tx, output] = parts.as_slice() else {
        return Err(bad());
    };
    let block: u32 = block.parse().map_err(|_| bad())?;
    let tx: u32 = tx.parse().map_err(|_| bad())?;
    let output: u16 = output.parse().map_err(|_| bad())?;
    if block >= 1 << 24 || tx >= 1 << 24 {
        return Err(ParseError::new(
            WHAT,
            text,
            "the block height and transaction index must each be below 16777216",
        ));
    }
    Ok((u64::from(block) << 40) | (u64::from(tx) << 16) | u64::from(output))
}

/// A short channel id as `BLOCKxTXxOUTPUT`.
pub fn format_short_channel_id(scid: u64) -> String {
    format!(
        "{}x{}x{}",
        scid >> 40,
        (scid >> 16) & 0xff_ffff,
        scid & 0xffff
    )
}

/// A channel id or a short channel id, as `channels` shows them.
pub fn parse_channel_ref(text: &str) -> Result<ChannelRef, ParseError> {
    if text.contains('x') {
        return parse_short_channel_id(text).map(ChannelRef::Short);
    }
    let id = parse_channel_id(text).map_err(|_| {
        ParseError::new(
            "channel",
            text,
            "expected a channel id (64 hex digits) or a short channel id (e.g. 103x1x0), as \
             `channels` shows them",
        )
    })?;
    let mut bytes = [0u8; 32];
    for (index, byte) in bytes.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&id[index * 2..index * 2 + 2], 16).unwrap_or(0);
    }
    Ok(ChannelRef::Id(bytes))
}

/// A 32-byte value (payment hash or preimage) as 64 hex digits.
pub fn parse_hash(what: &'static str, text: &str) -> Result<[u8; 32], ParseError> {
    use bitcoin::hex::FromHex;
    if text.len() != 64 {
        return Err(ParseError::new(what, text, "expected 64 hex digits"));
    }
    <[u8; 32]>::from_hex(text).map_err(|_| ParseError::new(what, text, "expected 64 hex digits"))
}

/// A transaction id: 64 hex digits.
pub fn parse_txid(text: &str) -> Result<bitcoin::Txid, ParseError> {
    if text.len() != 64 || !text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(ParseError::new(
            "transaction id",
            text,
            "expected 64 hex digits",
        ));
    }
    bitcoin::Txid::from_str(text)
        .map_err(|err| ParseError::new("transaction id", text, err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";

    #[test]
    fn short_channel_ids_round_trip() {
        let scid = parse_short_channel_id("103x1x0").unwrap();
        assert_eq!(format_short_channel_id(scid), "103x1x0");
        assert!(parse_short_channel_id("103x1").is_err());
        assert!(parse_short_channel_id("16777216x0x0").is_err());
        assert_eq!(parse_channel_ref("103x1x0"), Ok(ChannelRef::Short(scid)));
        assert_eq!(
            parse_channel_ref(&"0a".repeat(32)),
            Ok(ChannelRef::Id([0x0a; 32]))
        );
        assert!(parse_channel_ref("zz").is_err());
    }

    #[test]
    fn peer_uris_need_a_valid_key_host_and_port() {
        let (key, address) = parse_peer_uri(&format!("{KEY}@127.0.0.1:9735")).unwrap();
        assert_eq!(key.to_string(), KEY);
        assert_eq!(address, "127.0.0.1:9735");
        assert!(parse_peer_uri(&format!("{KEY}@[::1]:9735")).is_ok());
        assert!(parse_peer_uri(&format!("{KEY}@node.example:9735")).is_ok());

        let cases = [
            (KEY.to_string(), "expected <pubkey>@"),
            (format!("{KEY}@127.0.0.1"), "expected host:port"),
            (format!("{KEY}@127.0.0.1:0"), "port"),
            (format!("{KEY}@127.0.0.1:70000"), "port"),
            (format!("{KEY}@::1:9735"), "brackets"),
            (format!("{KEY}@:9735"), "expected host:port"),
            (format!("{}@127.0.0.1:9735", &KEY[..64]), "66 hex digits"),
            (
                format!("05{}@127.0.0.1:9735", &KEY[2..]),
                "not a valid public key",
            ),
        ];
        for (text, expected) in cases {
            let err = parse_peer_uri(&text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn channel_ids_are_64_hex_digits() {
        let id = "AB".repeat(32);
        assert_eq!(parse_channel_id(&id).unwrap(), "ab".repeat(32));
        assert!(parse_channel_id(&"ab".repeat(31)).is_err());
        assert!(parse_channel_id(&"zz".repeat(32)).is_err());
    }
}
