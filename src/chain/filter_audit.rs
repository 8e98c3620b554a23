//! Finding the peer that lies about a filter, as neutrino does.
//!
//! When peers disagree on filter headers the engine (`bip157` 0.8) only drops every peer and
//! tries again, so a lying peer keeps the node from syncing, and it is never told which peer
//! sent what. The audit asks every linked peer itself for the filter headers above the
//! verified tip, finds the first block whose filter hash they disagree on, downloads that
//! block (checked against its header), asks each side for its filter, and checks each filter
//! against the block ([`filter_disproved`]). A peer is banned only when its data is proved
//! wrong: a filter that leaves out a script the block pays to, counts fewer elements than the
//! block's output scripts or more than they and its inputs could make, cannot be decoded, or
//! does not hash to what the peer's own filter headers commit to. A slow or missing answer
//! proves nothing. A filter that differs only in the scripts of spent outputs (which a light
//! client cannot know without the outputs spent) cannot be proved wrong: then nobody is
//! banned, and the disagreement is reported.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use bitcoin::bip158::BlockFilter;
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::p2p::message_filter::CFHeaders;
use bitcoin::{Block, BlockHash, FilterHash, ScriptBuf};
use log::{info, warn};
use tokio::task::JoinSet;

use super::fetcher::verification_failure;
use super::filter_checks::check_element_count;
use super::links::{Link, LinkedFetchError, PeerLinks};
use super::peer_address::PeerAddress;
use super::tracker::ChainTracker;

/// Most filter headers asked of a peer at once (Bitcoin Core's limit).
const FILTER_HEADERS_PER_REQUEST: u32 = 2_000;

/// What an audit found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditOutcome {
    /// The linked peers agree on every filter above the verified tip.
    NoConflict,
    /// They disagree first on the filter of the block at `height`; the peers in `banned` were
    /// proved to lie about it (none when no side could be proved wrong).
    Conflict {
        /// The block's height.
        height: u32,
        /// The block's hash.
        hash: BlockHash,
        /// The peers proved to lie, with the proof.
        banned: Vec<(PeerAddress, String)>,
    },
    /// The audit could not be made (fewer than two peers answered, the block could not be
    /// fetched); the text says why.
    Inconclusive(String),
}

/// Why `filter` cannot be the BIP 158 basic filter of `block`, if that can be proved from the
/// block alone.
pub fn filter_disproved(block: &Block, filter: &BlockFilter) -> Option<String> {
    if let Err(err) = check_element_count(&filter.content) {
        return Some(format!("its filter cannot be read: {err}"));
    }
    let (bitcoin::VarInt(count), _) =
        bitcoin::consensus::encode::deserialize_partial(&filter.content).ok()?;
    let outputs: HashSet<&ScriptBuf> = block
        .txdata
        .iter()
        .flat_map(|tx| tx.output.iter())
        .map(|output| &output.script_pubkey)
        .filter(|script| !script.is_empty() && !script.is_op_return())
        .collect();
    let inputs: u64 = block
        .txdata
        .iter()
        .skip(1)
        .map(|tx| tx.input.len() as u64)
        .sum();
    let least = outputs.len() as u64;
    let most = least + inputs;
    if count < least {
        return Some(format!(
            "its filter of block {} counts {count} elements, but the block pays to {least} \
             distinct scripts",
            block.block_hash()
        ));
    }
    if count > most {
        return Some(format!(
            "its filter of block {} counts {count} elements, more than the block's {least} \
             output scripts and {inputs} inputs can make",
            block.block_hash()
        ));
    }
    let hash = block.block_hash();
    match filter.match_all(&hash, outputs.iter().map(|script| script.as_bytes())) {
        Ok(true) => None,
        Ok(false) => Some(format!(
            "its filter of block {hash} leaves out scripts the block pays to"
        )),
        Err(err) => Some(format!(
            "its filter of block {hash} cannot be decoded: {err}"
        )),
    }
}

/// The hash filter headers commit to for `content`.
fn filter_hash(content: &[u8]) -> FilterHash {
    FilterHash::from_raw_hash(sha256d::Hash::hash(content))
}

/// Finds the first block above the verified tip whose filter the linked peers disagree on,
/// and bans the peers proved to lie about it (see the module documentation).
pub async fn audit(links: &PeerLinks, tracker: &ChainTracker) -> AuditOutcome {
    let peers = links.open_links();
    if peers.len() < 2 {
        return AuditOutcome::Inconclusive(format!(
            "{} Bitcoin peer(s) linked; two are needed to compare",
            peers.len()
        ));
    }
    let heights = tracker.heights();
    let from = heights
        .verified_tip
        .map_or(tracker.chain_start().height, |(height, _)| height)
        .saturating_add(1);
    let Some((to, _)) = heights.header_tip else {
        return AuditOutcome::NoConflict;
    };
    let timeout = links.response_timeout();
    let mut start = from;
    while start <= to {
        let stop = start.saturating_add(FILTER_HEADERS_PER_REQUEST - 1).min(to);
        let Ok(Some(stop_hash)) = tracker.headers().hash_at(stop) else {
            return AuditOutcome::Inconclusive(format!("no stored header at height {stop}"));
        };
        let answers = ask_all(&peers, start, stop_hash, timeout).await;
        let expected = (stop - start + 1) as usize;
        let answers: Vec<(Arc<Link>, CFHeaders)> = answers
            .into_iter()
            .filter(|(_, headers)| headers.filter_hashes.len() == expected)
            .collect();
        if answers.len() < 2 {
            return AuditOutcome::Inconclusive(format!(
                "fewer than two Bitcoin peers sent filter headers for heights {start} to {stop}"
            ));
        }
        if let Some(index) = first_disagreement(&answers) {
            let height = start + index as u32;
            let Ok(Some(hash)) = tracker.headers().hash_at(height) else {
                return AuditOutcome::Inconclusive(format!("no stored header at height {height}"));
            };
            return settle(links, &answers, index, height, hash).await;
        }
        start = stop.saturating_add(1);
        if stop == u32::MAX {
            break;
        }
    }
    AuditOutcome::NoConflict
}

/// Asks every peer for its filter headers from `start` to `stop_hash`; peers that do not
/// answer in time are left out.
async fn ask_all(
    peers: &[Arc<Link>],
    start: u32,
    stop_hash: BlockHash,
    timeout: std::time::Duration,
) -> Vec<(Arc<Link>, CFHeaders)> {
    let mut asks = JoinSet::new();
    for link in peers {
        let link = link.clone();
        asks.spawn(async move {
            let answer = link.get_filter_headers(start, stop_hash, timeout).await;
            (link, answer)
        });
    }
    let mut answers = Vec::new();
    while let Some(done) = asks.join_next().await {
        match done {
            Ok((link, Ok(headers))) => answers.push((link, headers)),
            Ok((link, Err(err))) => info!(
                "Bitcoin peer {} sent no filter headers to compare: {err}",
                link.addr()
            ),
            Err(_) => {}
        }
    }
    answers
}

/// The index of the first filter hash the answers disagree on.
fn first_disagreement(answers: &[(Arc<Link>, CFHeaders)]) -> Option<usize> {
    let (_, first) = &answers[0];
    (0..first.filter_hashes.len()).find(|&index| {
        answers
            .iter()
            .any(|(_, headers)| headers.filter_hashes[index] != first.filter_hashes[index])
    })
}

/// Fetches the block the peers disagree on, asks each side for its filter, and bans the peers
/// whose filter is proved wrong.
async fn settle(
    links: &PeerLinks,
    answers: &[(Arc<Link>, CFHeaders)],
    index: usize,
    height: u32,
    hash: BlockHash,
) -> AuditOutcome {
    info!("Bitcoin peers disagree on the filter of block {hash} at height {height}; checking it");
    let block = match fetch_checked(links, hash).await {
        Ok(block) => block,
        Err(err) => return AuditOutcome::Inconclusive(err),
    };
    // The peers by the filter hash their headers commit to.
    let mut sides: BTreeMap<FilterHash, Vec<&Arc<Link>>> = BTreeMap::new();
    for (link, headers) in answers {
        sides
            .entry(headers.filter_hashes[index])
            .or_default()
            .push(link);
    }
    let timeout = links.response_timeout();
    let mut banned = Vec::new();
    for (committed, side) in sides {
        for link in &side {
            let filter = match link.get_filter(height, hash, timeout).await {
                Ok(filter) => filter,
                Err(err) => {
                    info!(
                        "Bitcoin peer {} sent no filter to check: {err}",
                        link.addr()
                    );
                    continue;
                }
            };
            let proof = if filter_hash(&filter.filter) != committed {
                Some(format!(
                    "its filter of block {hash} does not hash to what its own filter headers \
                     commit to"
                ))
            } else {
                filter_disproved(&block, &BlockFilter::new(&filter.filter))
            };
            // Every peer on this side committed to the same wrong filter.
            if let Some(proof) = proof {
                for liar in &side {
                    banned.push((liar.addr().clone(), proof.clone()));
                }
            }
            break;
        }
    }
    banned.sort();
    banned.dedup_by(|a, b| a.0 == b.0);
    if banned.is_empty() {
        warn!(
            "Bitcoin peers disagree on the filter of block {hash} at height {height}, but no \
             side could be proved wrong from the block alone"
        );
    }
    for (addr, proof) in &banned {
        links.ban(addr, proof);
    }
    AuditOutcome::Conflict {
        height,
        hash,
        banned,
    }
}

/// Downloads block `hash` from the linked peers and checks it against its header.
async fn fetch_checked(links: &PeerLinks, hash: BlockHash) -> Result<Block, String> {
    let mut avoid = Vec::new();
    loop {
        match links
            .get_block(hash, None, &avoid, links.response_timeout())
            .await
        {
            Ok((block, from)) => match verification_failure(&block, &hash) {
                None => return Ok(block),
                Some(failure) => {
                    info!("block {hash} from {from} failed verification: {failure}");
                    avoid.push(from);
                }
            },
            Err(LinkedFetchError::NoLink) if avoid.is_empty() => {
                return Err("no Bitcoin peer is linked".into())
            }
            Err(err) => return Err(format!("could not fetch block {hash} to check: {err}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::bip158::BlockFilterWriter;
    use bitcoin::block::{Header, Version};
    use bitcoin::hashes::Hash;
    use bitcoin::{
        Amount, CompactTarget, OutPoint, Sequence, Transaction, TxIn, TxMerkleNode, TxOut, Witness,
    };

    fn script(byte: u8) -> ScriptBuf {
        ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::from_byte_array([byte; 32]))
    }

    fn tx(inputs: u8, outputs: &[ScriptBuf]) -> Transaction {
        Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: bitcoin::absolute::LockTime::ZERO,
            input: (0..inputs)
                .map(|n| TxIn {
                    previous_output: OutPoint::new(bitcoin::Txid::from_byte_array([n; 32]), 0),
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::MAX,
                    witness: Witness::new(),
                })
                .collect(),
            output: outputs
                .iter()
                .map(|script| TxOut {
                    value: Amount::from_sat(1_000),
                    script_pubkey: script.clone(),
                })
                .collect(),
        }
    }

    /// A block whose coinbase pays script 1 and whose one transaction spends two outputs
    /// (paying scripts 8 and 9) and pays scripts 2 and 3.
    fn block() -> Block {
        let mut block = Block {
            header: Header {
                version: Version::TWO,
                prev_blockhash: BlockHash::all_zeros(),
                merkle_root: TxMerkleNode::all_zeros(),
                time: 0,
                bits: CompactTarget::from_consensus(0x207fffff),
                nonce: 0,
            },
            txdata: vec![tx(1, &[script(1)]), tx(2, &[script(2), script(3)])],
        };
        block.txdata[0].input[0].previous_output = OutPoint::null();
        block
    }

    fn filter_with(block: &Block, elements: &[ScriptBuf]) -> BlockFilter {
        let mut content = Vec::new();
        let mut writer = BlockFilterWriter::new(&mut content, block);
        for element in elements {
            writer.add_element(element.as_bytes());
        }
        writer.finish().unwrap();
        BlockFilter::new(&content)
    }

    #[test]
    fn the_true_filter_passes_and_a_filter_missing_a_payment_is_disproved() {
        let block = block();
        let spent = [script(8), script(9)];
        let truth = BlockFilter::new_script_filter(&block, |outpoint| {
            Ok::<_, bitcoin::bip158::Error>(
                spent[outpoint.txid.to_byte_array()[0] as usize].clone(),
            )
        })
        .unwrap();
        assert_eq!(filter_disproved(&block, &truth), None);
        // Hiding the payment to script 2 (one element fewer, a marker in its place).
        let hiding = filter_with(
            &block,
            &[script(1), script(3), script(8), script(9), script(7)],
        );
        let proof = filter_disproved(&block, &hiding).expect("disproved");
        assert!(proof.contains("leaves out"), "{proof}");
        // Hiding a spent output's script cannot be proved from the block alone.
        let hiding_a_spend = filter_with(&block, &[script(1), script(2), script(3), script(8)]);
        assert_eq!(filter_disproved(&block, &hiding_a_spend), None);
    }

    #[test]
    fn element_counts_outside_what_the_block_can_make_are_disproved() {
        let block = block();
        let too_few = filter_with(&block, &[script(1), script(2)]);
        assert!(filter_disproved(&block, &too_few)
            .unwrap()
            .contains("counts 2 elements"));
        let many: Vec<ScriptBuf> = (1..=6).map(script).collect();
        let too_many = filter_with(&block, &many);
        assert!(filter_disproved(&block, &too_many)
            .unwrap()
            .contains("more than"));
        assert!(filter_disproved(&block, &BlockFilter::new(&[0x05]))
            .unwrap()
            .contains("cannot be read"));
    }
}
