//! Amounts and fee rates as users type them: whole numbers of the base unit or amounts with
//! their unit (with overflow checks, never above 21 million bitcoin), and fee rates in sat/vB
//! or sat/kw. The configuration, the CLI and the control API all read these, so they sit
//! below all three and use nothing of the crate.

use std::str::FromStr;

use bitcoin::{Amount, Denomination};

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
