//! Repair of output-sweeper state saved by earlier versions, which handed the sweeper the
//! static outputs of cooperative closes. Those pay the wallet's own scripts (the wallet
//! already holds them), the sweeper's signer cannot spend them, and the sweeper spends every
//! pending output in one transaction: one such output made every later sweep fail. They are
//! removed from the saved state before the sweeper reads it.

use bitcoin::Script;
use lightning::chain::BestBlock;
use lightning::sign::SpendableOutputDescriptor;
use lightning::util::persist::{
    KVStoreSync, OUTPUT_SWEEPER_PERSISTENCE_KEY, OUTPUT_SWEEPER_PERSISTENCE_PRIMARY_NAMESPACE,
    OUTPUT_SWEEPER_PERSISTENCE_SECONDARY_NAMESPACE,
};
use lightning::util::ser::{Readable, Writeable};
use lightning::util::sweep::TrackedSpendableOutput;
use log::warn;

/// The sweeper's saved state, field for field as LDK's `OutputSweeper` writes and reads it.
struct SavedSweeperState {
    outputs: Vec<TrackedSpendableOutput>,
    best_block: BestBlock,
}

// LDK's serialization macro drops plain values on purpose.
#[allow(clippy::drop_non_drop)]
mod serialization {
    use super::*;

    lightning::impl_writeable_tlv_based!(SavedSweeperState, {
        (0, outputs, required_vec),
        (2, best_block, required),
    });
}

/// Removes, from the sweeper state saved in `store`, the static outputs whose script `owned`
/// says is the wallet's, and writes the state back (durably, before the sweeper reads it).
/// Returns how many were removed. A state that cannot be decoded is left for the sweeper's own
/// reader to refuse.
pub fn drop_wallet_static_outputs(
    store: &impl KVStoreSync,
    owned: impl Fn(&Script) -> bool,
) -> lightning::io::Result<usize> {
    let bytes = match store.read(
        OUTPUT_SWEEPER_PERSISTENCE_PRIMARY_NAMESPACE,
        OUTPUT_SWEEPER_PERSISTENCE_SECONDARY_NAMESPACE,
        OUTPUT_SWEEPER_PERSISTENCE_KEY,
    ) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == lightning::io::ErrorKind::NotFound => return Ok(0),
        Err(err) => return Err(err),
    };
    let Ok(mut state) = SavedSweeperState::read(&mut &bytes[..]) else {
        return Ok(0);
    };
    let before = state.outputs.len();
    state.outputs.retain(|tracked| match &tracked.descriptor {
        SpendableOutputDescriptor::StaticOutput { output, .. } => !owned(&output.script_pubkey),
        _ => true,
    });
    let removed = before - state.outputs.len();
    if removed > 0 {
        store.write(
            OUTPUT_SWEEPER_PERSISTENCE_PRIMARY_NAMESPACE,
            OUTPUT_SWEEPER_PERSISTENCE_SECONDARY_NAMESPACE,
            OUTPUT_SWEEPER_PERSISTENCE_KEY,
            state.encode(),
        )?;
        warn!(
            "removed {removed} output(s) of cooperative closes from the sweeper's queue: they \
             are already in the wallet, and the sweeper could not spend them"
        );
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bitcoin::hashes::Hash;
    use bitcoin::{Amount, BlockHash, Network, ScriptBuf, TxOut, Txid};
    use lightning::util::ser::ReadableArgs;
    use lightning::util::sweep::OutputSweeperSync;

    use super::*;
    use crate::chain::db::ChainDb;
    use crate::chain::engine::Engine;
    use crate::chain::{Broadcaster, FeeEstimates, FeeOverrides, WatchSet};
    use crate::node::ldk::logger::LdkLogger;
    use crate::node::ldk::types::Sweeper;
    use crate::wallet::Wallet;

    fn static_output(vout: u32, script: ScriptBuf) -> SpendableOutputDescriptor {
        SpendableOutputDescriptor::StaticOutput {
            outpoint: lightning::chain::transaction::OutPoint {
                txid: Txid::from_byte_array([7; 32]),
                index: vout as u16,
            },
            output: TxOut {
                value: Amount::from_sat(50_000 + u64::from(vout)),
                script_pubkey: script,
            },
            channel_keys_id: None,
        }
    }

    #[test]
    fn wallet_owned_static_outputs_leave_a_saved_sweeper_state_that_ldk_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let seed = [3u8; 32];
        let network = Network::Regtest;
        let store = Arc::new(crate::node::ldk::types::Store::new(dir.path().join("ldk")));
        let db = Arc::new(ChainDb::open(&dir.path().join("chain.sqlite"), network).unwrap());
        let broadcaster = Arc::new(Broadcaster::new(Engine::new(), db).unwrap());
        let fees = Arc::new(FeeEstimates::new(network, FeeOverrides::new()));
        let watch = Arc::new(WatchSet::new());
        let wallet = Arc::new(
            Wallet::open(
                &dir.path().join("wallet.sqlite"),
                &seed,
                network,
                None,
                watch.clone(),
                fees.clone(),
                broadcaster.clone(),
            )
            .unwrap(),
        );
        let keys = Arc::new(lightning::sign::KeysManager::new(&seed, 1, 2, true));
        let logger = Arc::new(LdkLogger::default());
        let best = BestBlock::new(BlockHash::all_zeros(), 0);
        let sweeper: Sweeper = OutputSweeperSync::new(
            best,
            broadcaster.clone(),
            fees.clone(),
            Some(watch.clone()),
            keys.clone(),
            wallet.clone(),
            store.clone(),
            logger.clone(),
        );
        let owned = wallet.change_script().unwrap();
        let foreign = ScriptBuf::new_op_return([1, 2, 3]);
        sweeper
            .track_spendable_outputs(
                vec![static_output(0, owned), static_output(1, foreign.clone())],
                None,
                false,
                None,
            )
            .unwrap();
        drop(sweeper);

        let removed = drop_wallet_static_outputs(&*store, |script| wallet.is_mine(script)).unwrap();
        assert_eq!(removed, 1);
        assert_eq!(
            drop_wallet_static_outputs(&*store, |script| wallet.is_mine(script)).unwrap(),
            0,
            "a repaired state is left alone"
        );

        let bytes = store
            .read(
                OUTPUT_SWEEPER_PERSISTENCE_PRIMARY_NAMESPACE,
                OUTPUT_SWEEPER_PERSISTENCE_SECONDARY_NAMESPACE,
                OUTPUT_SWEEPER_PERSISTENCE_KEY,
            )
            .unwrap();
        let (read_best, sweeper) = <(BestBlock, Sweeper)>::read(
            &mut &bytes[..],
            (
                broadcaster,
                fees,
                Some(watch),
                keys,
                wallet,
                store.clone(),
                logger,
            ),
        )
        .expect("LDK reads the repaired state");
        assert_eq!(read_best, best);
        let left: Vec<_> = sweeper
            .tracked_spendable_outputs()
            .into_iter()
            .map(|tracked| tracked.descriptor)
            .collect();
        assert_eq!(left, vec![static_output(1, foreign)]);
    }
}
