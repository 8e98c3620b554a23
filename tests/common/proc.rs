//! Reading a process's memory figures from `/proc` (Linux), for the benchmarks and tests.

/// A field of `/proc/<pid>/status` in kB (`pid` may be `self`); 0 when it cannot be read.
pub fn status_kb(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}
