//! Syntax of what users type: amounts (with overflow checks), `pubkey@host:port`, public keys,
//! channel ids and fee rates. The CLI uses these to refuse bad input before contacting the
//! daemon; the server uses them again because anyone holding the token may call it directly.
//! Meaning (is this invoice for our network, does this channel exist) is the node's business.

use std::str::FromStr;

use bitcoin::secp256k1::PublicKey;
use bitcoin::{Amount, Denomination};

pub use crate::node::ChannelRef;

/// All the bitcoin there will ever be, in satoshis.
pub const MAX_MONEY_SAT: u64 = 21_000_000 * 100_000_000;

/// [`MAX_MONEY_SAT`] in millisatoshis (fits in a `u64`).
pub const MAX_MONEY_MSAT: u64 = MAX_MONEY_SAT * 1000;

/// Input that is not well formed, naming what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {reason}")]
pub struct ParseError {
    /// What was being parsed ("amount", "peer address", …).
    pub what: &'static str,
    /// The text given.
    pub value: String,
    /// What is wrong with it.
    pub reason: String,
}

impl ParseError {
    /// An error about `value`, given as `what`.
    pub fn new(what: &'static str, value: &str, reason: impl Into<String>) -> ParseError {
        ParseError {
            what,
            value: value.to_string(),
            reason: reason.into(),
        }
    }
}

/// Parses a whole number of `unit`s no larger than `max`.
fn parse_amount(what: &'static str, text: &str, unit: &str, max: u64) -> Result<u64, ParseError> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(ParseError::new(
            what,
            text,
            format!(
                "expected a whole number of {unit}, or an amount with its unit \
                 (e.g. 50sat, 50000msat, 0.001btc)"
            ),
        ));
    }
    let value = text
        .parse::<u64>()
        .map_err(|_| ParseError::new(what, text, "too large"))?;
    if value > max {
        return Err(ParseError::new(
            what,
            text,
            format!("more than 21 million bitcoin ({max} {unit})"),
        ));
    }
    Ok(value)
}

/// Splits `50sat` into `("50", Some("sat"))`; a bare number has no unit.
fn split_unit(text: &str) -> (&str, Option<&str>) {
    match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(index) => (text[..index].trim_end(), Some(&text[index..])),
        None => (text, None),
    }
}

/// Parses `number` in the denomination named `unit` (the `bitcoin` crate's names: `btc`,
/// `mbtc`, `ubtc`, `bit`, `sat`, `msat`, …), in satoshis.
fn parse_with_unit(
    what: &'static str,
    text: &str,
    number: &str,
    unit: &str,
    base_unit: &str,
) -> Result<u64, ParseError> {
    let denomination = Denomination::from_str(unit).map_err(|_| {
        ParseError::new(
            what,
            text,
            format!(
                "expected a whole number of {base_unit}, or an amount with its unit \
                 (e.g. 50sat, 50000msat, 0.001btc); {unit:?} is not a unit"
            ),
        )
    })?;
    let amount = Amount::from_str_in(number, denomination)
        .map_err(|err| ParseError::new(what, text, err.to_string()))?;
    if amount.to_sat() > MAX_MONEY_SAT {
        return Err(ParseError::new(what, text, "more than 21 million bitcoin"));
    }
    Ok(amount.to_sat())
}

/// A satoshi amount: a whole number of sat, or an amount with its unit (`50sat`,
/// `50000msat`, `0.001btc`); at most 21 million bitcoin.
pub fn parse_sat(what: &'static str, text: &str) -> Result<u64, ParseError> {
    match split_unit(text) {
        (number, None) => parse_amount(what, number, "sat", MAX_MONEY_SAT),
        (number, Some(unit)) => parse_with_unit(what, text, number, unit, "sat"),
    }
}

/// A millisatoshi amount: a whole number of msat, or an amount with its unit (`50000msat`,
/// `50sat`, `0.001btc`); at most 21 million bitcoin.
pub fn parse_msat(what: &'static str, text: &str) -> Result<u64, ParseError> {
    match split_unit(text) {
        (number, None) => parse_amount(what, number, "msat", MAX_MONEY_MSAT),
        (number, Some(unit)) if unit.eq_ignore_ascii_case("msat") => {
            parse_amount(what, number, "msat", MAX_MONEY_MSAT)
                .map_err(|err| ParseError::new(what, text, err.reason))
        }
        (number, Some(unit)) => Ok(parse_with_unit(what, text, number, unit, "msat")? * 1000),
    }
}

/// A base fee: msat or with its unit, at most what a channel update can carry (`u32` msat).
pub fn parse_base_fee_msat(text: &str) -> Result<u32, ParseError> {
    let msat = parse_msat("base fee", text)?;
    u32::try_from(msat)
        .map_err(|_| ParseError::new("base fee", text, format!("at most {} msat", u32::MAX)))
}

/// Checks a satoshi amount received over the API.
pub fn check_sat(what: &'static str, value: u64) -> Result<u64, ParseError> {
    if value > MAX_MONEY_SAT {
        return Err(ParseError::new(
            what,
            &value.to_string(),
            "more than 21 million bitcoin",
        ));
    }
    Ok(value)
}

/// Checks a millisatoshi amount received over the API.
pub fn check_msat(what: &'static str, value: u64) -> Result<u64, ParseError> {
    if value > MAX_MONEY_MSAT {
        return Err(ParseError::new(
            what,
            &value.to_string(),
            "more than 21 million bitcoin",
        ));
    }
    Ok(value)
}

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

/// A fee rate with its unit, as the CLI, the API and the configuration take it: `5sat/vb`
/// (up to three decimals) or `1250sat/kw` (whole sat per 1000 weight units; `sat/kwu` too); a
/// bare number is sat/vB. Returned in sat per 1000 weight units, rounded up.
pub fn parse_fee_rate(text: &str) -> Result<u64, ParseError> {
    const WHAT: &str = "fee rate";
    let lower = text.trim().to_ascii_lowercase();
    let (number, unit) = split_unit(&lower);
    match unit {
        None | Some("sat/vb") | Some("sat/vbyte") => {
            parse_fee_rate_sat_per_vb(number).map_err(|err| ParseError::new(WHAT, text, err.reason))
        }
        Some("sat/kw") | Some("sat/kwu") => {
            let rate = parse_amount(WHAT, number, "sat/kw", u64::MAX)
                .map_err(|_| ParseError::new(WHAT, text, "expected a whole number of sat/kw"))?;
            if rate == 0 {
                return Err(ParseError::new(WHAT, text, "must be more than zero"));
            }
            Ok(rate)
        }
        Some(_) => Err(ParseError::new(
            WHAT,
            text,
            "expected a rate with its unit, e.g. 5sat/vb or 1250sat/kw",
        )),
    }
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

/// A fee rate in sat/vB (whole or with up to three decimals, more than zero), returned in sat
/// per 1000 weight units (1 sat/vB = 250 sat/kwu), rounded up.
pub fn parse_fee_rate_sat_per_vb(text: &str) -> Result<u64, ParseError> {
    const WHAT: &str = "fee rate";
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits_only = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if whole.is_empty() || !digits_only(whole) || !digits_only(fraction) || fraction.len() > 3 {
        return Err(ParseError::new(
            WHAT,
            text,
            "expected sat/vB as a number with at most three decimals, e.g. 2 or 1.5",
        ));
    }
    let too_large = || ParseError::new(WHAT, text, "too large");
    let whole: u64 = whole.parse().map_err(|_| too_large())?;
    let fraction_milli: u64 = format!("{fraction:0<3}").parse().unwrap_or(0);
    let milli_sat_per_vb = whole
        .checked_mul(1000)
        .and_then(|milli| milli.checked_add(fraction_milli))
        .ok_or_else(too_large)?;
    if milli_sat_per_vb == 0 {
        return Err(ParseError::new(WHAT, text, "must be more than zero"));
    }
    let sat_per_kwu = milli_sat_per_vb
        .checked_mul(250)
        .ok_or_else(too_large)?
        .div_ceil(1000);
    Ok(sat_per_kwu)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798";

    #[test]
    fn amounts_accept_digits_and_refuse_overflow_and_nonsense() {
        assert_eq!(parse_sat("amount", "0"), Ok(0));
        assert_eq!(parse_sat("amount", "150000"), Ok(150_000));
        assert_eq!(parse_sat("amount", "2100000000000000"), Ok(MAX_MONEY_SAT));
        let err = parse_sat("amount", "2100000000000001").unwrap_err();
        assert!(err.to_string().contains("21 million"), "{err}");
        let err = parse_sat("amount", "99999999999999999999999").unwrap_err();
        assert_eq!(err.reason, "too large");
        for bad in ["", "-5", "1.5", "1e3", " 5", "five"] {
            let err = parse_sat("amount", bad).unwrap_err();
            assert!(
                err.to_string().contains("whole number of sat"),
                "{bad}: {err}"
            );
        }
        assert_eq!(
            parse_msat("amount", "2100000000000000000"),
            Ok(MAX_MONEY_MSAT)
        );
        assert!(parse_msat("amount", "2100000000000000001").is_err());
        assert!(parse_msat("amount", "18446744073709551616").is_err());
        assert!(check_sat("amount", MAX_MONEY_SAT + 1).is_err());
        assert!(check_msat("amount", u64::MAX).is_err());
    }

    #[test]
    fn amounts_take_units() {
        assert_eq!(parse_sat("amount", "50sat"), Ok(50));
        assert_eq!(parse_sat("amount", "50000msat"), Ok(50));
        assert_eq!(parse_sat("amount", "0.001btc"), Ok(100_000));
        assert_eq!(parse_sat("amount", "0.001BTC"), Ok(100_000));
        assert_eq!(parse_msat("amount", "50sat"), Ok(50_000));
        assert_eq!(parse_msat("amount", "1500msat"), Ok(1_500));
        assert_eq!(parse_msat("amount", "0.001btc"), Ok(100_000_000));
        assert_eq!(parse_msat("amount", "1500"), Ok(1_500));
        for bad in [
            "1500msat",
            "1.5sat",
            "5furlongs",
            "sat",
            "0.000000001btc",
            "22000000btc",
        ] {
            let err = parse_sat("amount", bad).unwrap_err();
            assert!(err.to_string().contains(bad), "{bad}: {err}");
        }
        assert!(parse_msat("amount", "1.5msat").is_err());
    }

    #[test]
    fn fee_rates_take_units() {
        assert_eq!(parse_fee_rate("5sat/vb"), Ok(1_250));
        assert_eq!(parse_fee_rate("5 sat/vB"), Ok(1_250));
        assert_eq!(parse_fee_rate("1250sat/kw"), Ok(1_250));
        assert_eq!(parse_fee_rate("253sat/kwu"), Ok(253));
        assert_eq!(parse_fee_rate("2"), Ok(500));
        for bad in [
            "0sat/vb",
            "0sat/kw",
            "5sat/b",
            "1.5sat/kw",
            "sat/vb",
            "5btc",
        ] {
            assert!(parse_fee_rate(bad).is_err(), "{bad}");
        }
    }

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

    #[test]
    fn fee_rates_convert_from_sat_per_vb_rounding_up() {
        assert_eq!(parse_fee_rate_sat_per_vb("1"), Ok(250));
        assert_eq!(parse_fee_rate_sat_per_vb("2.5"), Ok(625));
        assert_eq!(parse_fee_rate_sat_per_vb("1.001"), Ok(251));
        assert_eq!(parse_fee_rate_sat_per_vb("0.001"), Ok(1));
        for bad in ["0", "0.000", "", ".5", "1.2345", "-1", "abc", "1,5"] {
            assert!(parse_fee_rate_sat_per_vb(bad).is_err(), "{bad}");
        }
        let err = parse_fee_rate_sat_per_vb("99999999999999999999").unwrap_err();
        assert_eq!(err.reason, "too large");
        let err = parse_fee_rate_sat_per_vb("18446744073709551").unwrap_err();
        assert_eq!(err.reason, "too large");
    }
}
