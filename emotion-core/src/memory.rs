//! The C allocator's share of the board program's memory (glibc on Linux; elsewhere
//! these do nothing).
//!
//! Loading a graph allocates and frees hundreds of megabytes in blocks of kilobytes to
//! tens of megabytes. glibc serves a large block with its own mapping and gives it back
//! on free, but each such free raises its threshold for "large" (up to 32 MB): from then
//! on the blocks tract allocates while optimising a graph come from the heap, and what
//! it frees there stays resident. Measured on the base-size bundle (int8 speech encoder,
//! 100 MB): loading it left 187 MB resident with the moving threshold, 126 MB with a
//! fixed one; `emotion-edge listen` peaked at 262 MB and 184 MB (helper measurement,
//! 2026-12-02; the levers as they stand: docs/results/memory-levers.md).
//!
//! [`trim`] runs after every graph load (returns the heap's free pages, whatever the
//! threshold). [`release_large_blocks`] is the program's opt-in (the board program
//! calls it first thing, since a library should not change the allocator's policy
//! behind its program's back): from then on every graph load runs with the threshold
//! fixed at [`MMAP_THRESHOLD`], so each large block it frees goes back at once, and
//! between loads the threshold is [`INFERENCE_MMAP_THRESHOLD`], glibc's own upper bound,
//! so that the tensors of each run come from (and stay in) the heap. Kept low during
//! inference too, every run mapped its large tensors afresh and faulted their pages in:
//! the base-size encoder took 340–370 ms instead of 232 on 2 s.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The size from which glibc maps a block of its own while a graph loads (its default
/// starting value).
pub const MMAP_THRESHOLD: usize = 128 * 1024;

/// The threshold between loads: glibc's largest moving threshold (32 MB on 64-bit).
pub const INFERENCE_MMAP_THRESHOLD: usize = 4 * 1024 * 1024 * std::mem::size_of::<usize>();

/// Whether the program opted in ([`release_large_blocks`]).
static OPTED_IN: AtomicBool = AtomicBool::new(false);
/// Graph loads under way.
static LOADING: AtomicUsize = AtomicUsize::new(0);

/// Opts the process in: graph loads from now on return what they free at once (see the
/// module's doc). True when the allocator takes the setting (glibc), false elsewhere.
pub fn release_large_blocks() -> bool {
    let applied = imp::set_mmap_threshold(INFERENCE_MMAP_THRESHOLD);
    OPTED_IN.store(applied, Ordering::SeqCst);
    applied
}

/// Returns the free pages of the allocator's heaps to the system (glibc's
/// `malloc_trim(0)`); a no-op elsewhere. Costs a few milliseconds.
pub fn trim() {
    imp::trim()
}

/// A graph load under way: the low threshold while it lives (when the program opted
/// in); on drop, the heap trimmed and, once no load is left, the inference threshold.
pub(crate) struct Loading(());

impl Loading {
    pub(crate) fn start() -> Loading {
        if LOADING.fetch_add(1, Ordering::SeqCst) == 0 && OPTED_IN.load(Ordering::SeqCst) {
            imp::set_mmap_threshold(MMAP_THRESHOLD);
        }
        Loading(())
    }
}

impl Drop for Loading {
    fn drop(&mut self) {
        trim();
        if LOADING.fetch_sub(1, Ordering::SeqCst) == 1 && OPTED_IN.load(Ordering::SeqCst) {
            imp::set_mmap_threshold(INFERENCE_MMAP_THRESHOLD);
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use std::ffi::c_int;

    unsafe extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
        fn malloc_trim(pad: usize) -> c_int;
    }

    /// glibc's `M_TRIM_THRESHOLD` and `M_MMAP_THRESHOLD` (malloc.h).
    const M_TRIM_THRESHOLD: c_int = -1;
    const M_MMAP_THRESHOLD: c_int = -3;

    /// Fixes the mmap threshold at `bytes`, and the heap's trim threshold at twice that
    /// (as glibc's own moving threshold does), so freed heap blocks below it are kept
    /// for reuse. True when glibc took it.
    pub(super) fn set_mmap_threshold(bytes: usize) -> bool {
        let value = c_int::try_from(bytes).unwrap_or(c_int::MAX);
        // SAFETY: mallopt only sets a tunable of the allocator; any value is accepted
        // or refused (returns 0) without other effect.
        unsafe {
            let taken = mallopt(M_MMAP_THRESHOLD, value) == 1;
            if taken {
                mallopt(M_TRIM_THRESHOLD, value.saturating_mul(2));
            }
            taken
        }
    }

    pub(super) fn trim() {
        // SAFETY: malloc_trim only returns free memory to the system.
        unsafe {
            malloc_trim(0);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    pub(super) fn set_mmap_threshold(_bytes: usize) -> bool {
        false
    }

    pub(super) fn trim() {}
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_can_be_called_any_number_of_times() {
        let applied = super::release_large_blocks();
        assert_eq!(applied, super::release_large_blocks());
        assert_eq!(
            applied,
            cfg!(all(target_os = "linux", target_env = "gnu")),
            "glibc takes the setting"
        );
        super::trim();
        super::trim();
        // Loads nest and end in any order without a panic. The count is global and other
        // tests load graphs in parallel: while both guards live it is at least 2.
        let (a, b) = (super::Loading::start(), super::Loading::start());
        assert!(super::LOADING.load(std::sync::atomic::Ordering::SeqCst) >= 2);
        drop(a);
        drop(b);
    }
}
