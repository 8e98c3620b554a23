//! Where a chain checks compact filters from, and how that height is kept.
//!
//! A node with nothing that can hold money yet (no wallet, no channels) needs no filter of a
//! block mined before its wallet and channel manager exist. Its new chain then starts in a
//! header phase: the engine syncs headers only, and when they reach the tip the height from
//! which filters are checked ("filters from", `F`) is fixed: the block after that tip, or the
//! birthday of a restored wallet. Every filter from `F` on is checked; below it only headers
//! are held. Wallet and channel state is only ever created on block `F - 1` or above (see
//! [`super::tracker::ChainTracker::admit_new_state`]), and `F` only ever moves down: to cover
//! state that exists already (a kept wallet, restored channels) or a reorganisation below it.

use rusqlite::Connection;

use super::db::{meta_get, meta_set};
use super::error::StoreError;

/// Where a new chain database checks compact filters from ([`super::ChainConfig::filters`]).
/// A database that has a chain keeps what it was created with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FilterStart {
    /// From the block after the chain's start (genesis or its start point) on: every filter,
    /// for a node whose wallet or channels may need any block.
    #[default]
    ChainStart,
    /// Headers only up to the tip the first sync reaches; filters of the blocks after it: for
    /// a node whose wallet and channel manager are created at that tip.
    Tip,
    /// Headers only below this height, filters from it on: for a wallet restored with this
    /// birthday and nothing else that can hold money.
    Height(u32),
}

impl std::fmt::Display for FilterStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FilterStart::ChainStart => write!(f, "compact filters from the chain's start on"),
            FilterStart::Tip => write!(
                f,
                "headers only up to the tip the first sync reaches, compact filters of the \
                 blocks after it"
            ),
            FilterStart::Height(birthday) => write!(
                f,
                "headers only below the wallet birthday {birthday}, compact filters from it on"
            ),
        }
    }
}

/// Where a chain stands with its filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FiltersFrom {
    /// The header phase of a [`FilterStart::Tip`] or [`FilterStart::Height`] start: headers
    /// only, until they reach the tip.
    HeaderPhase(FilterStart),
    /// Filters are checked from this height on.
    Height(u32),
}

impl FiltersFrom {
    /// The height filters are checked from, once it is fixed.
    pub fn height(self) -> Option<u32> {
        match self {
            FiltersFrom::Height(height) => Some(height),
            FiltersFrom::HeaderPhase(_) => None,
        }
    }

    /// Where the header phase of `plan` ends, given the tip its headers reached: the height
    /// filters are checked from. A birthday above that tip waits for no block: filters start
    /// after the tip.
    pub fn after_headers_synced(plan: FilterStart, tip: u32) -> u32 {
        match plan {
            FilterStart::Height(birthday) => birthday.clamp(1, tip + 1),
            FilterStart::Tip | FilterStart::ChainStart => tip + 1,
        }
    }
}

/// `meta` key of [`FiltersFrom`]; a chain without it checks filters from its start.
const FILTERS_FROM_KEY: &str = "filters_from";

const TAG_TIP: u8 = 0;
const TAG_BIRTHDAY: u8 = 1;
const TAG_FIXED: u8 = 2;

/// The stored [`FiltersFrom`], if one was stored.
pub(crate) fn stored(conn: &Connection) -> Result<Option<FiltersFrom>, StoreError> {
    let Some(bytes) = meta_get(conn, FILTERS_FROM_KEY)? else {
        return Ok(None);
    };
    let corrupt = || StoreError::Corrupt("the stored filter start is malformed".into());
    let height = || -> Result<u32, StoreError> {
        let bytes: [u8; 4] = bytes
            .get(1..5)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(corrupt)?;
        Ok(u32::from_le_bytes(bytes))
    };
    match bytes.first() {
        Some(&TAG_TIP) if bytes.len() == 1 => Ok(Some(FiltersFrom::HeaderPhase(FilterStart::Tip))),
        Some(&TAG_BIRTHDAY) if bytes.len() == 5 => Ok(Some(FiltersFrom::HeaderPhase(
            FilterStart::Height(height()?),
        ))),
        Some(&TAG_FIXED) if bytes.len() == 5 => Ok(Some(FiltersFrom::Height(height()?))),
        _ => Err(corrupt()),
    }
}

/// Stores `from` (in the caller's transaction).
pub(crate) fn store(conn: &Connection, from: FiltersFrom) -> Result<(), StoreError> {
    let bytes = match from {
        FiltersFrom::HeaderPhase(FilterStart::Tip | FilterStart::ChainStart) => vec![TAG_TIP],
        FiltersFrom::HeaderPhase(FilterStart::Height(height)) => {
            let mut bytes = vec![TAG_BIRTHDAY];
            bytes.extend_from_slice(&height.to_le_bytes());
            bytes
        }
        FiltersFrom::Height(height) => {
            let mut bytes = vec![TAG_FIXED];
            bytes.extend_from_slice(&height.to_le_bytes());
            bytes
        }
    };
    meta_set(conn, FILTERS_FROM_KEY, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_state_reads_back_as_stored() {
        let conn = Connection::open_in_memory().expect("sqlite");
        conn.execute_batch("CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);")
            .expect("schema");
        assert_eq!(stored(&conn).unwrap(), None);
        for from in [
            FiltersFrom::HeaderPhase(FilterStart::Tip),
            FiltersFrom::HeaderPhase(FilterStart::Height(840_001)),
            FiltersFrom::Height(938_400),
        ] {
            store(&conn, from).unwrap();
            assert_eq!(stored(&conn).unwrap(), Some(from));
        }
        meta_set(&conn, FILTERS_FROM_KEY, &[TAG_FIXED, 1]).unwrap();
        assert!(matches!(stored(&conn), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn the_header_phase_ends_after_the_tip_or_at_the_birthday() {
        assert_eq!(
            FiltersFrom::after_headers_synced(FilterStart::Tip, 1_000),
            1_001
        );
        assert_eq!(
            FiltersFrom::after_headers_synced(FilterStart::Height(500), 1_000),
            500
        );
        // A birthday above the tip: nothing mined yet can pay the wallet.
        assert_eq!(
            FiltersFrom::after_headers_synced(FilterStart::Height(2_000), 1_000),
            1_001
        );
    }
}
