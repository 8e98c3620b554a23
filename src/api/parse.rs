//! Syntax of what users type: amounts (with overflow checks), `pubkey@host:port`, public keys,
//! channel ids and fee rates. The CLI uses these to refuse bad input before contacting the
//! daemon; the server uses them again because anyone holding the token may call it directly.
//! Meaning (is this invoice for our network, does this channel exist) is the node's business.

use std::str::FromStr;

use bitcoin::secp256k1::PublicKey;

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
            format!("expected a whole number of {unit}"),
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

/// A satoshi amount: digits only, at most 21 million bitcoin.
pub fn parse_sat(what: &'static str, text: &str) -> Result<u64, ParseError> {
    parse_amount(what, text, "sat", MAX_MONEY_SAT)
}

/// A millisatoshi amount: digits only, at most 21 million bitcoin.
pub fn parse_msat(what: &'static str, text: &str) -> Result<u64, ParseError> {
    parse_amount(what, text, "msat", MAX_MONEY_MSAT)
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
