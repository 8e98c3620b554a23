//! Start points: blocks of the public networks a header chain may start from.
//!
//! A fresh node does not need the chain since genesis: its wallet and channel manager are
//! created at the tip, so it starts its header chain (and its compact filters) at the newest
//! start point of its network. A node restored from a seed starts at the newest one below its
//! wallet birthday, so every filter from the birthday on is still checked. The table is
//! compiled in and reviewed with the code, as Bitcoin Core's `assumevalid` block is: the
//! heights and hashes come from Core's `chainparams.cpp` (assumeutxo snapshot blocks and the
//! default `assumevalid` block) and from the `bip157` crate (the blocks before the segwit and
//! taproot activations). Regtest has none; `--checkpoint HEIGHT:HASH` names one on any
//! network.

use std::fmt;
use std::str::FromStr;

use bitcoin::{BlockHash, Network};
use thiserror::Error;

/// A block a header chain may start from: the chain is taken to be right up to it, and
/// nothing at or below it is downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Checkpoint {
    /// Height of the block.
    pub height: u32,
    /// Its hash.
    pub hash: BlockHash,
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.height, self.hash)
    }
}

/// Why a `HEIGHT:HASH` start point was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CheckpointError {
    /// Not of the form `HEIGHT:HASH`.
    #[error("'{0}' is not HEIGHT:HASH (e.g. 840000:0000000000000000000320283a032748cef8227873ff4872689bf23f1cda83a5)")]
    Shape(String),
    /// The height is not a block height.
    #[error("'{0}' is not a block height")]
    Height(String),
    /// The hash is not 64 hex digits.
    #[error("'{0}' is not a block hash (64 hex digits)")]
    Hash(String),
    /// Height 0 is the genesis block, where every chain starts anyway.
    #[error("height 0 is the genesis block; leave the start point out to start there")]
    Genesis,
}

impl FromStr for Checkpoint {
    type Err = CheckpointError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (height, hash) = text
            .trim()
            .split_once(':')
            .ok_or_else(|| CheckpointError::Shape(text.to_owned()))?;
        let height: u32 = height
            .trim()
            .replace('_', "")
            .parse()
            .map_err(|_| CheckpointError::Height(height.to_owned()))?;
        if height == 0 {
            return Err(CheckpointError::Genesis);
        }
        let hash = hash.trim();
        if hash.len() != 64 {
            return Err(CheckpointError::Hash(hash.to_owned()));
        }
        let hash = hash
            .parse()
            .map_err(|_| CheckpointError::Hash(hash.to_owned()))?;
        Ok(Checkpoint { height, hash })
    }
}

/// The compiled-in start points of `network`, lowest first (none for regtest).
fn known(network: Network) -> &'static [(u32, &'static str)] {
    match network {
        Network::Bitcoin => &[
            (
                481_823,
                "000000000000000000cbeff0b533f8e1189cf09dfbebf57a8ebe349362811b80",
            ),
            (
                709_631,
                "000000000000000000013712fc242ee6dd28476d0e9c931c75f83e6974c6bccc",
            ),
            (
                840_000,
                "0000000000000000000320283a032748cef8227873ff4872689bf23f1cda83a5",
            ),
            (
                880_000,
                "000000000000000000010b17283c3c400507969a9c2afd1dcf2082ec5cca2880",
            ),
            (
                910_000,
                "0000000000000000000108970acb9522ffd516eae17acddcb1bd16469194a821",
            ),
            (
                935_000,
                "0000000000000000000147034958af1652b2b91bba607beacc5e72a56f0fb5ee",
            ),
            (
                938_343,
                "00000000000000000000ccebd6d74d9194d8dcdc1d177c478e094bfad51ba5ac",
            ),
        ],
        Network::Testnet => &[
            (
                2_500_000,
                "0000000000000093bcb68c03a9a168ae252572d348a2eaeba2cdf9231d73206f",
            ),
            (
                4_840_000,
                "00000000000000f4971a7fb37fbdff89315b69a2e1920c467654a382f0d64786",
            ),
            (
                4_842_348,
                "000000007a61e4230b28ac5cb6b5e5a0130de37ac1faf2f8987d2fa6505b67f4",
            ),
        ],
        Network::Testnet4 => &[
            (
                90_000,
                "0000000002ebe8bcda020e0dd6ccfbdfac531d2f6a81457191b99fc2df2dbe3b",
            ),
            (
                120_000,
                "000000000bd2317e51b3c5794981c35ba894ce27d3e772d5c39ecd9cbce01dc8",
            ),
            (
                123_613,
                "0000000002368b1e4ee27e2e85676ae6f9f9e69579b29093e9a82c170bf7cf8a",
            ),
        ],
        Network::Signet => &[
            (
                160_000,
                "0000003ca3c99aff040f2563c2ad8f8ec88bd0fd6b8f0895cfaf1ef90353a62c",
            ),
            (
                290_000,
                "0000000577f2741bb30cd9d39d6d71b023afbeb9764f6260786a97969d5c9ac0",
            ),
            (
                293_175,
                "00000008414aab61092ef93f1aacc54cf9e9f16af29ddad493b908a01ff5c329",
            ),
        ],
        _ => &[],
    }
}

/// The compiled-in start points of `network`, lowest first.
pub fn compiled(network: Network) -> Vec<Checkpoint> {
    known(network)
        .iter()
        .map(|(height, hash)| Checkpoint {
            height: *height,
            hash: hash.parse().expect("compiled-in block hash"),
        })
        .collect()
}

/// Where a new header chain of `network` starts: the newest of the compiled-in start points
/// and `explicit` (from `--checkpoint`) or, for a wallet restored with a `birthday`, the newest
/// of them at least two blocks below the birthday (the wallet then stands on the block before
/// the birthday, whose header must be in the chain, and is given every block from the
/// birthday on). `None` means genesis.
pub fn start_for(
    network: Network,
    explicit: Option<Checkpoint>,
    birthday: Option<u32>,
) -> Option<Checkpoint> {
    compiled(network)
        .into_iter()
        .chain(explicit)
        .filter(|point| birthday.is_none_or(|birthday| point.height + 2 <= birthday))
        .max_by_key(|point| point.height)
}

#[cfg(test)]
mod tests {
    use bitcoin::hashes::Hash;

    use super::*;

    #[test]
    fn the_compiled_tables_parse_and_rise() {
        for network in [
            Network::Bitcoin,
            Network::Testnet,
            Network::Testnet4,
            Network::Signet,
        ] {
            let points = compiled(network);
            assert!(!points.is_empty(), "{network} has start points");
            assert!(points.windows(2).all(|w| w[0].height < w[1].height));
        }
        assert!(compiled(Network::Regtest).is_empty());
    }

    #[test]
    fn a_fresh_node_starts_at_the_newest_and_a_restore_below_its_birthday() {
        let newest = start_for(Network::Bitcoin, None, None).expect("a start point");
        assert_eq!(newest.height, 938_343);
        let restored = start_for(Network::Bitcoin, None, Some(850_000)).expect("a start point");
        assert_eq!(restored.height, 840_000);
        // A birthday at a start point itself needs the block before it: the one below.
        let at_point = start_for(Network::Bitcoin, None, Some(840_000)).expect("a start point");
        assert_eq!(at_point.height, 709_631);
        assert_eq!(start_for(Network::Bitcoin, None, Some(400_000)), None);
        assert_eq!(start_for(Network::Regtest, None, None), None);
    }

    #[test]
    fn an_explicit_start_point_counts_as_one_more() {
        let explicit: Checkpoint = format!("300:{}", BlockHash::from_byte_array([3; 32]))
            .parse()
            .expect("parses");
        assert_eq!(
            start_for(Network::Regtest, Some(explicit), None),
            Some(explicit)
        );
        assert_eq!(start_for(Network::Regtest, Some(explicit), Some(250)), None);
        assert_eq!(
            start_for(Network::Regtest, Some(explicit), Some(302)),
            Some(explicit)
        );
        assert_eq!(start_for(Network::Regtest, Some(explicit), Some(301)), None);
    }

    #[test]
    fn bad_start_points_are_refused_with_what_was_wrong() {
        let hash = "0000000000000000000320283a032748cef8227873ff4872689bf23f1cda83a5";
        assert_eq!(
            format!("840_000:{hash}")
                .parse::<Checkpoint>()
                .map(|c| c.height),
            Ok(840_000)
        );
        assert!(matches!(
            hash.parse::<Checkpoint>(),
            Err(CheckpointError::Shape(_))
        ));
        assert!(matches!(
            format!("abc:{hash}").parse::<Checkpoint>(),
            Err(CheckpointError::Height(_))
        ));
        assert!(matches!(
            "840000:00ff".parse::<Checkpoint>(),
            Err(CheckpointError::Hash(_))
        ));
        assert_eq!(
            format!("0:{hash}").parse::<Checkpoint>(),
            Err(CheckpointError::Genesis)
        );
    }
}
