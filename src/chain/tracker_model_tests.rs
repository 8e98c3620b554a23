//! A property-based test of the [`ChainTracker`] against a simple model of the chain.
//!
//! Random sequences of what the compact-filter engine can report are applied to a tracker on
//! a real SQLite store: the active chain growing, reorganisations of random depth (including
//! back to a branch that was active before, whose filters the engine does not send again),
//! filters arriving late, twice, for blocks no longer active, or not at all, `Synced`
//! reports, pruning, writes that fail (another process holds the database's lock; the
//! tracker must change nothing, and the engine starts again from the stored chain), and engine
//! restarts (the engine starts again from the tracker's start
//! point and sends the filters above it again, as `bip157` does, and as the chain source's
//! host asks when the engine reports itself synced above a gap in the verified filters).
//! After every step the stored active chain must be the model's, the verified tip the
//! longest prefix of the active chain whose blocks have their own filter stored, and never
//! above the header tip. Once everything is delivered the verified tip reaches the tip.
//!
//! `cargo test` runs 256 cases; `LIGHTFILTER_PROPTEST_CASES=20000 cargo test --lib
//! tracker_model` runs more.

use std::collections::BTreeMap;
use std::sync::Arc;

use bitcoin::block::Header;
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, CompactTarget, Network, TxMerkleNode};
use proptest::prelude::*;

use super::db::ChainDb;
use super::header_store::HeaderChange;
use super::tracker::{ChainTracker, EngineEvent, StartPoint};

/// One thing the engine (or the node) does.
#[derive(Debug, Clone)]
enum Step {
    /// The active chain grows by this many blocks.
    Extend(u8),
    /// A branch forking this many blocks below the tip, one block longer, becomes active.
    Reorg(u8),
    /// The most recently replaced branch comes back, one block longer than the active one.
    Return,
    /// Pending filters are delivered: this many, the first one twice if `duplicate`.
    Deliver { count: u8, duplicate: bool },
    /// The oldest pending filter is lost.
    Lose,
    /// The engine reports its filters synced to the header tip (when nothing is pending).
    Synced,
    /// The engine restarts from the tracker's start point.
    Restart,
    /// The listeners consumed up to this far below the tip; the stores are pruned.
    Prune(u8),
    /// The chain grows by this many blocks, but the batch cannot be written; the engine is
    /// restarted from the stored chain.
    FailedExtend(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1u8..6).prop_map(Step::Extend),
        2 => (1u8..5).prop_map(Step::Reorg),
        1 => Just(Step::Return),
        4 => (1u8..8, any::<bool>()).prop_map(|(count, duplicate)| Step::Deliver { count, duplicate }),
        1 => Just(Step::Lose),
        2 => Just(Step::Synced),
        1 => Just(Step::Restart),
        1 => (0u8..10).prop_map(Step::Prune),
        1 => (1u8..4).prop_map(Step::FailedExtend),
    ]
}

/// What the chain is, and what the engine still owes the tracker.
#[derive(Clone)]
struct Model {
    /// The active chain, by height (genesis first).
    active: Vec<Header>,
    /// The last branch a reorganisation replaced, with the height of its first block.
    replaced: Option<(u32, Vec<Header>)>,
    /// Filters the engine has yet to deliver, in order.
    pending: Vec<(u32, BlockHash)>,
    /// The block whose filter the tracker stores at each height, as the model expects.
    stored: BTreeMap<u32, BlockHash>,
    /// Below this height filters were pruned (the listeners consumed them).
    pruned_below: u32,
    salt: u32,
}

impl Model {
    fn new() -> Self {
        let genesis = bitcoin::constants::genesis_block(Network::Regtest).header;
        Self {
            stored: BTreeMap::from([(0, genesis.block_hash())]),
            active: vec![genesis],
            replaced: None,
            pending: Vec::new(),
            pruned_below: 0,
            salt: 0,
        }
    }

    fn tip(&self) -> u32 {
        self.active.len() as u32 - 1
    }

    fn child(&mut self, parent: &Header) -> Header {
        self.salt += 1;
        Header {
            version: bitcoin::block::Version::TWO,
            prev_blockhash: parent.block_hash(),
            merkle_root: TxMerkleNode::from_byte_array([0; 32]),
            time: parent.time + 1,
            bits: CompactTarget::from_consensus(0x207fffff),
            nonce: self.salt,
        }
    }

    /// `count` new blocks on top of `parent`.
    fn branch(&mut self, parent: Header, count: u32) -> Vec<Header> {
        let mut blocks: Vec<Header> = Vec::new();
        for _ in 0..count {
            let parent = blocks.last().copied().unwrap_or(parent);
            let block = self.child(&parent);
            blocks.push(block);
        }
        blocks
    }

    /// The verified tip the tracker must report: the longest prefix of the active chain whose
    /// blocks all have their own filter stored, from where filters are still kept.
    fn verified_tip(&self) -> u32 {
        let mut height = self.pruned_below.min(self.tip());
        while height < self.tip()
            && self.stored.get(&(height + 1))
                == Some(&self.active[height as usize + 1].block_hash())
        {
            height += 1;
        }
        height
    }

    /// Applies what the tracker does with a filter event: stored when its block is active.
    fn filter_arrives(&mut self, height: u32, hash: BlockHash) {
        if self
            .active
            .get(height as usize)
            .is_some_and(|header| header.block_hash() == hash)
        {
            self.stored.insert(height, hash);
        }
    }

    /// Turns `step` into engine events, updating the model as the tracker should.
    fn events(&mut self, step: &Step, tracker: &ChainTracker) -> Vec<EngineEvent> {
        match *step {
            Step::Extend(count) => {
                let first = self.tip() + 1;
                let tip = *self.active.last().expect("genesis");
                let blocks = self.branch(tip, u32::from(count));
                let mut events = Vec::new();
                for (i, header) in blocks.into_iter().enumerate() {
                    let height = first + i as u32;
                    self.active.push(header);
                    self.pending.push((height, header.block_hash()));
                    events.push(EngineEvent::Header(HeaderChange::Connected {
                        height,
                        header,
                    }));
                }
                events
            }
            Step::Reorg(depth) => {
                let depth = u32::from(depth).min(self.tip());
                if depth == 0 {
                    return Vec::new();
                }
                let fork = self.tip() - depth;
                let parent = self.active[fork as usize];
                let accepted = self.branch(parent, depth + 1);
                self.switch_to(fork, accepted)
            }
            Step::Return => {
                let Some((first, mut old)) = self.replaced.take() else {
                    return Vec::new();
                };
                let fork = first - 1;
                // The old branch's blocks must still extend the active chain at its fork.
                if self.active.get(fork as usize).map(Header::block_hash)
                    != old.first().map(|h| h.prev_blockhash)
                {
                    return Vec::new();
                }
                let needed = (self.tip() + 1).saturating_sub(fork + old.len() as u32);
                let last = *old.last().expect("a branch has blocks");
                let more = self.branch(last, needed);
                let known = old.len();
                old.extend(more);
                let events = self.switch_to(fork, old);
                // The engine checked the old branch's filters before: it sends none of them
                // again, only the new blocks'.
                self.pending
                    .retain(|(height, _)| *height > fork + known as u32);
                events
            }
            Step::Deliver { count, duplicate } => {
                let count = usize::from(count).min(self.pending.len());
                let delivered: Vec<_> = self.pending.drain(..count).collect();
                let mut events = Vec::new();
                if duplicate {
                    if let Some(&(height, hash)) = delivered.first() {
                        events.push(filter_event(height, hash));
                    }
                }
                events.extend(delivered.iter().map(|&(h, hash)| filter_event(h, hash)));
                for (height, hash) in delivered {
                    self.filter_arrives(height, hash);
                }
                events
            }
            Step::Lose => {
                if !self.pending.is_empty() {
                    self.pending.remove(0);
                }
                Vec::new()
            }
            Step::Synced => {
                if !self.pending.is_empty() {
                    return Vec::new();
                }
                let tip = self.active.last().expect("genesis");
                vec![EngineEvent::Synced {
                    height: self.tip(),
                    hash: tip.block_hash(),
                }]
            }
            Step::Restart => {
                // The engine starts again from the tracker's start point and fetches every
                // filter above it; what it owed before is dropped with it.
                let from = match tracker.start_point(None).expect("a start point") {
                    StartPoint::Checkpoint { height, .. } => height,
                    StartPoint::Snapshot(headers) => headers.first().map_or(0, |(h, _)| *h),
                };
                self.pending = (from + 1..=self.tip())
                    .map(|height| (height, self.active[height as usize].block_hash()))
                    .collect();
                Vec::new()
            }
            Step::FailedExtend(_) => Vec::new(),
            Step::Prune(below_tip) => {
                let consumed = self.tip().saturating_sub(u32::from(below_tip));
                tracker.prune(consumed).expect("pruned");
                let kept_from =
                    consumed.saturating_sub(super::filter_store::FILTERS_KEPT_BELOW_CONSUMED);
                self.stored.retain(|height, _| *height >= kept_from);
                // Listeners at `consumed` need nothing below: the model counts from the
                // lowest filter still kept, as the tracker's stored verified tip does.
                self.pruned_below = self.pruned_below.max(kept_from.saturating_sub(1));
                Vec::new()
            }
        }
    }

    /// Makes `accepted` (blocks from `fork + 1`) the active branch; returns the reorg event.
    fn switch_to(&mut self, fork: u32, accepted: Vec<Header>) -> Vec<EngineEvent> {
        let disconnected: Vec<Header> = self.active.split_off(fork as usize + 1);
        let event = EngineEvent::Header(HeaderChange::Reorganized {
            accepted: accepted
                .iter()
                .enumerate()
                .map(|(i, h)| (fork + 1 + i as u32, *h))
                .collect(),
            disconnected: disconnected
                .iter()
                .enumerate()
                .map(|(i, h)| (fork + 1 + i as u32, *h))
                .collect(),
        });
        self.replaced = Some((fork + 1, disconnected));
        self.pending.retain(|(height, _)| *height <= fork);
        for (i, header) in accepted.iter().enumerate() {
            let height = fork + 1 + i as u32;
            self.pending.push((height, header.block_hash()));
        }
        self.active.extend(accepted);
        vec![event]
    }
}

fn filter_event(height: u32, hash: BlockHash) -> EngineEvent {
    EngineEvent::Filter {
        height,
        hash,
        content: vec![0],
    }
}

fn cases() -> u32 {
    std::env::var("LIGHTFILTER_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256)
}

/// Checks the tracker against the model; `Err` names the first difference.
fn check(tracker: &ChainTracker, model: &Model) -> Result<(), TestCaseError> {
    let heights = tracker.heights();
    let tip = model.active.last().expect("genesis");
    prop_assert_eq!(heights.header_tip, Some((model.tip(), tip.block_hash())));
    for (height, header) in model.active.iter().enumerate() {
        prop_assert_eq!(
            tracker.headers().hash_at(height as u32).expect("readable"),
            Some(header.block_hash()),
            "active block at {}",
            height
        );
    }
    let (verified, verified_hash) = heights.verified_tip.expect("a verified tip");
    prop_assert!(verified <= model.tip(), "verified tip above the header tip");
    prop_assert_eq!(verified_hash, model.active[verified as usize].block_hash());
    prop_assert_eq!(verified, model.verified_tip(), "verified tip");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_tracker_follows_a_model_of_the_chain(steps in prop::collection::vec(step(), 1..40)) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("chain.sqlite");
        let db = Arc::new(ChainDb::open(&path, Network::Regtest).expect("db"));
        db.set_busy_timeout(std::time::Duration::ZERO).expect("timeout set");
        let tracker = ChainTracker::new(db, Network::Regtest).expect("tracker");
        let mut model = Model::new();
        let blocker = rusqlite::Connection::open(&path).expect("second connection");
        for step in &steps {
            if let Step::FailedExtend(count) = *step {
                let before = (tracker.heights(), model.clone());
                let events = model.events(&Step::Extend(count), &tracker);
                blocker.execute_batch("BEGIN IMMEDIATE").expect("lock taken");
                prop_assert!(tracker.apply(&events, |_| {}).is_err(), "a locked write failed");
                blocker.execute_batch("ROLLBACK").expect("lock released");
                prop_assert_eq!(tracker.heights(), before.0, "a failed write changed the heights");
                model = before.1;
                check(&tracker, &model)?;
                model.events(&Step::Restart, &tracker);
                continue;
            }
            let events = model.events(step, &tracker);
            if !events.is_empty() {
                tracker.apply(&events, |_| {}).expect("events applied");
            }
            check(&tracker, &model)?;
        }
        // The engine delivers what it owes; if it then reports itself synced with the
        // verified tip below its tip (filters it will not send again), it is restarted, as
        // the chain source's host does, and delivers again: the verified tip reaches the tip.
        for _ in 0..2 {
            let deliver = Step::Deliver { count: u8::MAX, duplicate: false };
            while !model.pending.is_empty() {
                let events = model.events(&deliver, &tracker);
                tracker.apply(&events, |_| {}).expect("events applied");
            }
            let synced = model.events(&Step::Synced, &tracker);
            tracker.apply(&synced, |_| {}).expect("events applied");
            check(&tracker, &model)?;
            if tracker.heights().verified_tip.map(|(h, _)| h) == Some(model.tip()) {
                break;
            }
            model.events(&Step::Restart, &tracker);
        }
        prop_assert_eq!(
            tracker.heights().verified_tip.map(|(h, _)| h),
            Some(model.tip()),
            "the verified tip reaches the tip once everything is delivered"
        );
    }
}
