//! What the server logs about refused requests. Anyone who can reach the API can send
//! requests without the token, with paths of up to ~64 KB, as fast as the machine answers;
//! logging each in full would fill a small disk quickly. So every path or message logged is
//! cut to [`MAX_LOGGED_CHARS`] characters, and of the requests refused for their token at
//! most [`LOGGED_PER_WINDOW`] are logged per [`WINDOW`]; the rest are counted and reported in
//! one line when the next window opens.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Characters of a request's path (or of an error message naming it) that are logged.
pub const MAX_LOGGED_CHARS: usize = 100;

/// Refusals for the token logged one by one per window.
pub const LOGGED_PER_WINDOW: u32 = 10;

/// The window over which refusals are counted.
pub const WINDOW: Duration = Duration::from_secs(60);

/// `text` cut to [`MAX_LOGGED_CHARS`] characters, saying how long it was when cut.
pub fn clip(text: &str) -> String {
    match text.char_indices().nth(MAX_LOGGED_CHARS) {
        None => text.to_string(),
        Some((end, _)) => format!("{}… ({} bytes)", &text[..end], text.len()),
    }
}

/// What to do with one refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Log it, after a summary of `unlogged` refusals of the previous window if non-zero.
    Log {
        /// Refusals of the previous window that were not logged.
        unlogged: u64,
    },
    /// Count it without logging it.
    Count,
}

/// Counts refusals per window and decides which are logged.
#[derive(Debug)]
pub struct RefusalLimiter {
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    opened: Instant,
    logged: u32,
    unlogged: u64,
}

impl Default for RefusalLimiter {
    fn default() -> Self {
        RefusalLimiter {
            window: Mutex::new(Window {
                opened: Instant::now(),
                logged: 0,
                unlogged: 0,
            }),
        }
    }
}

impl RefusalLimiter {
    /// Notes a refusal at `now` and says whether to log it.
    pub fn note(&self, now: Instant) -> Verdict {
        let mut window = self
            .window
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut unlogged = 0;
        if now.saturating_duration_since(window.opened) >= WINDOW {
            unlogged = window.unlogged;
            *window = Window {
                opened: now,
                logged: 0,
                unlogged: 0,
            };
        }
        if window.logged < LOGGED_PER_WINDOW {
            window.logged += 1;
            Verdict::Log { unlogged }
        } else {
            window.unlogged += 1;
            Verdict::Count
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_paths_are_cut_and_short_ones_kept() {
        assert_eq!(clip("/v1/getinfo"), "/v1/getinfo");
        let long = format!("/v1/{}", "é".repeat(30_000));
        let clipped = clip(&long);
        assert!(clipped.chars().count() < MAX_LOGGED_CHARS + 20, "{clipped}");
        assert!(clipped.ends_with(&format!("… ({} bytes)", long.len())));
    }

    #[test]
    fn refusals_past_the_first_few_of_a_window_are_counted_and_summed_up_later() {
        let limiter = RefusalLimiter::default();
        let start = Instant::now();
        for _ in 0..LOGGED_PER_WINDOW {
            assert_eq!(limiter.note(start), Verdict::Log { unlogged: 0 });
        }
        for _ in 0..500 {
            assert_eq!(limiter.note(start + WINDOW / 2), Verdict::Count);
        }
        assert_eq!(limiter.note(start + WINDOW), Verdict::Log { unlogged: 500 });
        assert_eq!(
            limiter.note(start + WINDOW * 3),
            Verdict::Log { unlogged: 0 }
        );
    }
}
