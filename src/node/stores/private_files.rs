//! Owner-only permissions for the data directory. The directory holds the seed, the wallet,
//! channel state with payment preimages and the API token; a directory that was copied,
//! restored or opened up with `chmod -R` while the node was down has group and other
//! permissions removed from it and from everything in it at start, and the log says what was
//! changed. Symbolic links are neither followed nor changed.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Permission bits for anyone but the owner.
const OTHERS: u32 = 0o077;

/// One file or directory whose permissions were narrowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Narrowed {
    /// The file or directory.
    pub path: PathBuf,
    /// Its permission bits before.
    pub from: u32,
    /// Its permission bits now.
    pub to: u32,
}

impl std::fmt::Display for Narrowed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {:04o} → {:04o}",
            self.path.display(),
            self.from,
            self.to
        )
    }
}

/// Removes group and other permissions from `dir` and everything under it; returns what was
/// changed, `dir` first.
pub fn make_owner_only(dir: &Path) -> std::io::Result<Vec<Narrowed>> {
    let mut narrowed = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(path) = pending.pop() {
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.file_type().is_symlink() {
            continue;
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&path)? {
                pending.push(entry?.path());
            }
        }
        let from = meta.permissions().mode() & 0o7777;
        if from & OTHERS != 0 {
            let to = from & !OTHERS;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(to))?;
            narrowed.push(Narrowed { path, from, to });
        }
    }
    Ok(narrowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn everything_under_the_directory_becomes_owner_only_and_links_are_left_alone() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        std::fs::create_dir_all(dir.join("ldk/monitors")).unwrap();
        std::fs::write(dir.join("seed"), [0u8; 32]).unwrap();
        std::fs::write(dir.join("ldk/monitors/a"), "x").unwrap();
        let outside = root.path().join("outside");
        std::fs::write(&outside, "not ours").unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("link")).unwrap();
        for (path, bits) in [
            (dir.clone(), 0o755),
            (dir.join("ldk"), 0o775),
            (dir.join("ldk/monitors"), 0o700),
            (dir.join("seed"), 0o644),
            (dir.join("ldk/monitors/a"), 0o600),
            (outside.clone(), 0o644),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bits)).unwrap();
        }

        let narrowed = make_owner_only(&dir).unwrap();
        assert_eq!(narrowed[0].path, dir);
        assert_eq!((narrowed[0].from, narrowed[0].to), (0o755, 0o700));
        assert_eq!(narrowed.len(), 3, "{narrowed:?}");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("ldk")), 0o700);
        assert_eq!(mode(&dir.join("seed")), 0o600);
        assert_eq!(mode(&dir.join("ldk/monitors/a")), 0o600);
        assert_eq!(mode(&outside), 0o644, "a link's target is not touched");
        assert!(make_owner_only(&dir).unwrap().is_empty());
    }
}
