//! ChainListener: the one [`Listen`] the chain source drives. It fans every block out, in
//! order, to the listeners registered with it (wallet, ChannelManager, ChainMonitor,
//! OutputSweeper), and remembers what it last delivered so the chain source can re-deliver a
//! block whose transactions became relevant after its filter was checked.

use std::sync::{Arc, Mutex, RwLock};

use bitcoin::block::Header;
use bitcoin::{Block, BlockHash};
use lightning::chain::transaction::TransactionData;
use lightning::chain::{BestBlock, Listen};

/// A listener registered with the fan-out.
pub type SharedListen = Arc<dyn Listen + Send + Sync>;

/// The registered listeners with their names, shared with every block's fan-out (a block
/// takes one reference count, not a copy of the list).
type Registry = Arc<Vec<(String, SharedListen)>>;

/// The last block delivered, and to whom.
#[derive(Debug)]
struct Delivery {
    hash: BlockHash,
    height: u32,
    /// Whether its transactions were delivered (full block or a re-delivery).
    with_transactions: bool,
    /// Indices of the listeners that received it.
    recipients: Vec<usize>,
}

/// Fans blocks out to registered listeners and tracks the last delivery.
#[derive(Default)]
pub struct ChainListener {
    listeners: RwLock<Registry>,
    last: Mutex<Option<Delivery>>,
    tip: Mutex<Option<BestBlock>>,
}

impl std::fmt::Debug for ChainListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .listeners
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(name, _)| name.clone())
            .collect();
        f.debug_struct("ChainListener")
            .field("listeners", &names)
            .finish()
    }
}

impl ChainListener {
    /// An empty fan-out.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `listener` under `name` (for logs); returns its index. Blocks reach listeners
    /// in registration order.
    pub fn register(&self, name: &str, listener: SharedListen) -> usize {
        let mut listeners = self.listeners.write().unwrap_or_else(|p| p.into_inner());
        let registered = Arc::make_mut(&mut listeners);
        registered.push((name.to_string(), listener));
        registered.len() - 1
    }

    /// Replaces every registered listener, e.g. the individual channel monitors used during
    /// start-up synchronisation by the `ChainMonitor` that holds them afterwards. Forgets the
    /// last delivery, whose recipients were counted among the old listeners.
    pub fn replace_all(&self, listeners: Vec<(String, SharedListen)>) {
        *self.listeners.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(listeners);
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// A [`Listen`] that forwards to the listener at `index` only, recording deliveries like
    /// the fan-out does (used when listeners start at different blocks).
    pub fn view(&self, index: usize) -> ListenerView<'_> {
        ListenerView {
            fan_out: self,
            index,
        }
    }

    /// Number of registered listeners.
    pub fn len(&self) -> usize {
        self.listeners
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    /// Whether no listener is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The hash and height of the last block delivered, if it went out without its
    /// transactions: the block a grown watch set may make worth re-delivering.
    pub fn last_header_only_delivery(&self) -> Option<(BlockHash, u32)> {
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|delivery| !delivery.with_transactions)
            .map(|delivery| (delivery.hash, delivery.height))
    }

    /// Records that every listener now stands at `tip` (after a start-up synchronisation,
    /// which may have had nothing to connect).
    pub fn synchronized_to(&self, tip: BestBlock) {
        *self.tip.lock().unwrap_or_else(|p| p.into_inner()) = Some(tip);
    }

    /// The block the listeners have most recently been brought to.
    pub fn tip(&self) -> Option<BestBlock> {
        *self.tip.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Delivers the transactions of `block`, whose header alone was delivered before, to the
    /// listeners that received it, as a second `filtered_block_connected` for the same block.
    /// Does nothing unless `block` is the last delivery and it went out without transactions.
    pub fn redeliver_with_transactions(&self, block: &Block) -> bool {
        let hash = block.block_hash();
        let recipients = {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            match last.as_mut() {
                Some(delivery) if delivery.hash == hash && !delivery.with_transactions => {
                    delivery.with_transactions = true;
                    (delivery.recipients.clone(), delivery.height)
                }
                _ => return false,
            }
        };
        let (recipients, height) = recipients;
        let txdata: Vec<_> = block.txdata.iter().enumerate().collect();
        let listeners = self.snapshot();
        for index in recipients {
            if let Some((name, listener)) = listeners.get(index) {
                log::debug!("re-delivering block {hash} at {height} with transactions to {name}");
                listener.filtered_block_connected(&block.header, &txdata, height);
            }
        }
        true
    }

    fn snapshot(&self) -> Registry {
        self.listeners
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn record(&self, index: usize, hash: BlockHash, height: u32, with_transactions: bool) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match last.as_mut() {
            Some(delivery) if delivery.hash == hash && delivery.height == height => {
                if !delivery.recipients.contains(&index) {
                    delivery.recipients.push(index);
                }
                delivery.with_transactions &= with_transactions;
            }
            _ => {
                *last = Some(Delivery {
                    hash,
                    height,
                    with_transactions,
                    recipients: vec![index],
                })
            }
        }
        drop(last);
        let tip = BestBlock::new(hash, height);
        let mut current = self.tip.lock().unwrap_or_else(|p| p.into_inner());
        if current.is_none_or(|t| t.height <= height) {
            *current = Some(tip);
        }
    }

    fn record_disconnect(&self, fork_point: BestBlock) {
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = None;
        let mut tip = self.tip.lock().unwrap_or_else(|p| p.into_inner());
        if tip.is_none_or(|t| t.height > fork_point.height) {
            *tip = Some(fork_point);
        }
    }

    fn connect_one(&self, index: usize, listener: &SharedListen, block: &Arrival<'_>) {
        listener.filtered_block_connected(block.header, block.txdata, block.height);
        self.record(index, block.hash, block.height, block.full);
    }
}

/// A block on its way to the listeners, hashed once for all of them.
struct Arrival<'a> {
    header: &'a Header,
    hash: BlockHash,
    txdata: &'a TransactionData<'a>,
    height: u32,
    /// Whether its transactions are delivered with it.
    full: bool,
}

impl<'a> Arrival<'a> {
    fn filtered(header: &'a Header, txdata: &'a TransactionData<'a>, height: u32) -> Self {
        Self {
            header,
            hash: header.block_hash(),
            txdata,
            height,
            full: !txdata.is_empty(),
        }
    }

    fn full(block: &'a Block, txdata: &'a TransactionData<'a>, height: u32) -> Self {
        Self {
            full: true,
            ..Self::filtered(&block.header, txdata, height)
        }
    }
}

impl Listen for ChainListener {
    fn filtered_block_connected(&self, header: &Header, txdata: &TransactionData, height: u32) {
        let block = Arrival::filtered(header, txdata, height);
        for (index, (_, listener)) in self.snapshot().iter().enumerate() {
            self.connect_one(index, listener, &block);
        }
    }

    fn block_connected(&self, block: &Block, height: u32) {
        let txdata: Vec<_> = block.txdata.iter().enumerate().collect();
        let block = Arrival::full(block, &txdata, height);
        for (index, (_, listener)) in self.snapshot().iter().enumerate() {
            self.connect_one(index, listener, &block);
        }
    }

    fn blocks_disconnected(&self, fork_point: BestBlock) {
        for (_, listener) in self.snapshot().iter() {
            listener.blocks_disconnected(fork_point);
        }
        self.record_disconnect(fork_point);
    }
}

/// One listener of a [`ChainListener`], seen alone.
pub struct ListenerView<'a> {
    fan_out: &'a ChainListener,
    index: usize,
}

impl ListenerView<'_> {
    fn listener(&self) -> Option<SharedListen> {
        self.fan_out
            .listeners
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(self.index)
            .map(|(_, l)| l.clone())
    }
}

impl Listen for ListenerView<'_> {
    fn filtered_block_connected(&self, header: &Header, txdata: &TransactionData, height: u32) {
        if let Some(listener) = self.listener() {
            let block = Arrival::filtered(header, txdata, height);
            self.fan_out.connect_one(self.index, &listener, &block);
        }
    }

    fn block_connected(&self, block: &Block, height: u32) {
        if let Some(listener) = self.listener() {
            let txdata: Vec<_> = block.txdata.iter().enumerate().collect();
            let block = Arrival::full(block, &txdata, height);
            self.fan_out.connect_one(self.index, &listener, &block);
        }
    }

    fn blocks_disconnected(&self, fork_point: BestBlock) {
        if let Some(listener) = self.listener() {
            listener.blocks_disconnected(fork_point);
        }
        self.fan_out.record_disconnect(fork_point);
    }
}
