//! The node's data directory: created with owner-only permissions (an existing one open to
//! other users is closed, and the log says what was changed), marked with its network,
//! locked so that one daemon at a time uses it, and holding the seed.
//!
//! The seed is created once, with 0600 permissions, and made durable (file and directory
//! fsync) before anything is derived from it; an existing seed is never overwritten. A
//! directory made for another network, or one whose seed is not 32 bytes, is refused before
//! any file in it is touched.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use bitcoin::secp256k1::PublicKey;
use bitcoin::Network;
use log::warn;

use super::private_files::{make_owner_only, Narrowed};
use crate::config::{network_name, parse_network};
use crate::node::error::NodeError;

/// File holding the network the directory was made for.
pub const NETWORK_FILE: &str = "network";
/// File holding the 32-byte seed.
pub const SEED_FILE: &str = "seed";
/// Lock file held while a daemon runs.
pub const LOCK_FILE: &str = "lightfilter.lock";
/// What a seed's keys have made: a missing seed beside any of these is refused, not replaced.
const MADE_FROM_SEED: [&str; 2] = ["wallet.sqlite", "ldk"];

/// An opened, locked data directory. The lock is released when this is dropped.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    _lock: File,
}

impl DataDir {
    /// Opens `path` for `network`, creating it if needed, and takes its lock. Refuses a
    /// directory of another network, or one another daemon holds.
    pub fn open(path: &Path, network: Network) -> Result<Self, NodeError> {
        let fail = |reason: String| NodeError::DataDir {
            path: path.to_path_buf(),
            reason,
        };
        if !path.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(path)
                .map_err(|err| fail(format!("cannot create it: {err}")))?;
        } else if !path.is_dir() {
            return Err(fail("exists but is not a directory".into()));
        }
        // Check the network before touching anything.
        let marker = path.join(NETWORK_FILE);
        match std::fs::read_to_string(&marker) {
            Ok(text) => {
                let stored = parse_network(text.trim()).map_err(|_| {
                    fail(format!(
                        "{} holds {:?}, not a network name",
                        marker.display(),
                        text.trim()
                    ))
                })?;
                if stored != network {
                    return Err(fail(format!(
                        "it belongs to a {} node, but this node runs on {}; nothing was changed",
                        network_name(stored),
                        network_name(network)
                    )));
                }
            }
            Err(err) if err.kind() == ErrorKind::NotFound => {}
            Err(err) => return Err(fail(format!("cannot read {}: {err}", marker.display()))),
        }
        let lock_path = path.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|err| fail(format!("cannot open the lock file: {err}")))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(NodeError::Locked {
                    dir: path.to_path_buf(),
                    lock: lock_path,
                })
            }
            Err(TryLockError::Error(err)) => {
                return Err(fail(format!("cannot lock {}: {err}", lock_path.display())))
            }
        }
        // Only now that the directory is ours (right network, locked): close what is open.
        let narrowed = make_owner_only(path).map_err(|err| {
            fail(format!(
                "it is open to other users and cannot be made owner-only: {err}"
            ))
        })?;
        report_narrowed(path, &narrowed);
        if !marker.exists() {
            write_durably(path, NETWORK_FILE, network_name(network).as_bytes())
                .map_err(|err| fail(format!("cannot record its network: {err}")))?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the seed, creating it (durably, 0600) if the directory has none. Returns the seed
    /// and whether it was just created. A missing seed beside a wallet or channel state (made
    /// with the lost seed) is refused: a new one would not open them.
    pub fn load_or_create_seed(&self) -> Result<([u8; 32], bool), NodeError> {
        let seed_path = self.path.join(SEED_FILE);
        let fail = |reason: String| NodeError::DataDir {
            path: self.path.clone(),
            reason,
        };
        match read_seed(&self.path) {
            Ok(Some(seed)) => Ok((seed, false)),
            Ok(None) => {
                if let Some(made) = MADE_FROM_SEED
                    .iter()
                    .find(|name| self.path.join(name).exists())
                {
                    return Err(fail(format!(
                        "the seed file {} is missing, but {made} holds what was made with it; \
                         put the seed back (nothing was changed)",
                        seed_path.display()
                    )));
                }
                let seed: [u8; 32] = crate::node::keys::keys_manager::random_bytes();
                write_durably(&self.path, SEED_FILE, &seed)
                    .map_err(|err| fail(format!("cannot write the seed: {err}")))?;
                Ok((seed, true))
            }
            Err(err) => Err(err),
        }
    }

    /// Writes `seed` as the directory's seed (durably, 0600). Refuses a directory that has a
    /// seed already: a seed is never overwritten.
    pub fn create_seed(&self, seed: &[u8; 32]) -> Result<(), NodeError> {
        let seed_path = self.path.join(SEED_FILE);
        let fail = |reason: String| NodeError::DataDir {
            path: self.path.clone(),
            reason,
        };
        if std::fs::symlink_metadata(&seed_path).is_ok() {
            return Err(fail(format!(
                "it has a seed already ({}); a seed is never overwritten (nothing was changed)",
                seed_path.display()
            )));
        }
        write_durably(&self.path, SEED_FILE, seed)
            .map_err(|err| fail(format!("cannot write the seed: {err}")))
    }
}

/// Reads the seed of the data directory `dir`, without opening or locking it (a daemon may
/// be running on it); `None` when it has no seed.
pub fn read_seed(dir: &Path) -> Result<Option<[u8; 32]>, NodeError> {
    let seed_path = dir.join(SEED_FILE);
    let fail = |reason: String| NodeError::DataDir {
        path: dir.to_path_buf(),
        reason,
    };
    match File::open(&seed_path) {
        Ok(mut file) => {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)
                .map_err(|err| fail(format!("cannot read the seed: {err}")))?;
            let seed: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
                fail(format!(
                    "{} holds {} bytes, not a 32-byte seed; refusing to start",
                    seed_path.display(),
                    bytes.len()
                ))
            })?;
            Ok(Some(seed))
        }
        Err(err) if err.kind() == ErrorKind::NotFound => Ok(None),
        Err(err) => Err(fail(format!("cannot open the seed: {err}"))),
    }
}

/// The 24 words of the seed of the data directory `dir` (a daemon may be running on it).
pub fn seed_words_of(dir: &Path) -> Result<String, NodeError> {
    match read_seed(dir)? {
        Some(seed) => Ok(crate::node::keys::seed_words::seed_to_words(&seed)),
        None => Err(NodeError::DataDir {
            path: dir.to_path_buf(),
            reason: format!(
                "it has no seed ({} is missing)",
                dir.join(SEED_FILE).display()
            ),
        }),
    }
}

/// Creates the data directory `dir` for `network` with the seed written as `words` (24
/// words) and returns the node id it gives. Bad words are refused before anything is written;
/// a directory with a seed already, or one a daemon holds, is refused unchanged.
pub fn init_from_words(dir: &Path, network: Network, words: &str) -> Result<PublicKey, NodeError> {
    let seed = crate::node::keys::seed_words::words_to_seed(words)
        .map_err(|err| NodeError::invalid("seed words", err.to_string()))?;
    if read_seed(dir)?.is_some() {
        return Err(NodeError::DataDir {
            path: dir.to_path_buf(),
            reason: format!(
                "it has a seed already ({}); a seed is never overwritten (nothing was changed)",
                dir.join(SEED_FILE).display()
            ),
        });
    }
    let data_dir = DataDir::open(dir, network)?;
    data_dir.create_seed(&seed)?;
    let keys = lightning::sign::KeysManager::new(&seed, 0, 0, true);
    Ok(
        lightning::sign::NodeSigner::get_node_id(&keys, lightning::sign::Recipient::Node)
            .expect("the node key is available"),
    )
}

/// Creates `dir/name` with `contents` (failing if it exists), 0600, and fsyncs the file and
/// the directory.
pub fn write_durably(dir: &Path, name: &str, contents: &[u8]) -> std::io::Result<()> {
    let path = dir.join(name);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(contents)?;
    file.sync_all()?;
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Logs what [`make_owner_only`] changed: one warning, naming the files (the first 20) with
/// their old and new permissions.
fn report_narrowed(dir: &Path, narrowed: &[Narrowed]) {
    if narrowed.is_empty() {
        return;
    }
    const NAMED: usize = 20;
    let mut changes: Vec<String> = narrowed
        .iter()
        .take(NAMED)
        .map(ToString::to_string)
        .collect();
    if narrowed.len() > NAMED {
        changes.push(format!("and {} more", narrowed.len() - NAMED));
    }
    warn!(
        "the data directory {} was open to other users; removed group and other permissions \
         from {} entries (it holds keys and payment preimages): {}",
        dir.display(),
        narrowed.len(),
        changes.join(", ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_seed_is_created_once_with_owner_only_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path(), Network::Regtest).unwrap();
        let (seed, created) = data.load_or_create_seed().unwrap();
        assert!(created);
        let mode = std::fs::metadata(dir.path().join(SEED_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, created) = data.load_or_create_seed().unwrap();
        assert!(!created);
        assert_eq!(seed, again);
    }

    #[test]
    fn a_second_opener_and_another_network_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDir::open(dir.path(), Network::Regtest).unwrap();
        let second = DataDir::open(dir.path(), Network::Regtest).unwrap_err();
        assert!(matches!(second, NodeError::Locked { .. }), "{second}");
        drop(first);
        let other = DataDir::open(dir.path(), Network::Signet).unwrap_err();
        assert!(
            other.to_string().contains("belongs to a regtest node"),
            "{other}"
        );
        DataDir::open(dir.path(), Network::Regtest).expect("reopens after the lock is released");
    }

    #[test]
    fn a_data_directory_is_made_from_words_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node");
        let bad = init_from_words(&path, Network::Regtest, "abandon abandon").unwrap_err();
        assert!(bad.to_string().contains("expected 24 words"), "{bad}");
        assert!(!path.exists(), "bad words write nothing");
        let words = crate::node::keys::seed_words::seed_to_words(&[3u8; 32]);
        init_from_words(&path, Network::Regtest, &words).unwrap();
        assert_eq!(read_seed(&path).unwrap(), Some([3u8; 32]));
        assert_eq!(seed_words_of(&path).unwrap(), words);
        let other = crate::node::keys::seed_words::seed_to_words(&[4u8; 32]);
        let again = init_from_words(&path, Network::Regtest, &other).unwrap_err();
        assert!(again.to_string().contains("seed already"), "{again}");
        assert_eq!(read_seed(&path).unwrap(), Some([3u8; 32]));
    }

    #[test]
    fn a_truncated_seed_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(SEED_FILE), [7u8; 12]).unwrap();
        let data = DataDir::open(dir.path(), Network::Regtest).unwrap();
        let err = data.load_or_create_seed().unwrap_err().to_string();
        assert!(err.contains("12 bytes"), "{err}");
        assert_eq!(
            std::fs::read(dir.path().join(SEED_FILE)).unwrap(),
            vec![7u8; 12]
        );
    }
}
