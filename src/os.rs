//! Process-wide operating-system settings of the daemon: the open-file limit, raised so the
//! node's files and sockets do not run short (the control API and the Lightning listener
//! bound their own connections), and the file-creation mask,
//! so that every file and directory the daemon creates is its owner's only.

/// The soft and hard limits on open files, once raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileLimit {
    /// The limit in force.
    pub soft: u64,
    /// The most it may be raised to.
    pub hard: u64,
}

/// This process's soft and hard limits on open files.
#[cfg(unix)]
pub fn open_file_limit() -> std::io::Result<FileLimit> {
    let limit = rlimit_nofile()?;
    // `rlim_t` is not `u64` on every Unix.
    #[allow(clippy::unnecessary_cast)]
    Ok(FileLimit {
        soft: limit.rlim_cur as u64,
        hard: limit.rlim_max as u64,
    })
}

#[cfg(unix)]
fn rlimit_nofile() -> std::io::Result<libc::rlimit> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for the call to fill in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(limit)
}

/// Raises this process's soft limit on open files to its hard limit; returns both.
#[cfg(unix)]
pub fn raise_open_file_limit() -> std::io::Result<FileLimit> {
    let mut limit = rlimit_nofile()?;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit that asks for no more than the hard limit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        limit = raised;
    }
    // `rlim_t` is not `u64` on every Unix.
    #[allow(clippy::unnecessary_cast)]
    Ok(FileLimit {
        soft: limit.rlim_cur as u64,
        hard: limit.rlim_max as u64,
    })
}

/// Makes every file and directory this process creates from now on accessible to its owner
/// only (file-creation mask 077), whatever mode the creating code asks for.
#[cfg(unix)]
pub fn restrict_new_files() {
    // SAFETY: umask only sets the process's mask and cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}
