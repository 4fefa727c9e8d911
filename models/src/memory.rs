//! The C allocator's share of the board program's memory (glibc on Linux; elsewhere
//! these do nothing).
//!
//! Loading a graph allocates and frees hundreds of megabytes in blocks of kilobytes to
//! tens of megabytes. glibc serves a large block with its own mapping and gives it back
//! on free, but each such free raises its threshold for "large" (up to 32 MB): from then
//! on the blocks tract allocates while optimising a graph come from the heap, and what
//! it frees there stays resident. Measured on the base-size bundle (int8 speech encoder,
//! 100 MB): loading it left 187 MB resident with the moving threshold, 126 MB with a
//! fixed one; `emotion-edge listen` peaked at 262 MB and 184 MB
//! (docs/results/memory-levers.md).
//!
//! [`trim`] runs after every graph load (returns the heap's free pages, whatever the
//! threshold). [`release_large_blocks`] fixes the threshold for the whole process: the
//! board program should call it first thing (or its service set
//! `MALLOC_MMAP_THRESHOLD_=131072`, which does the same), since a library should not
//! change the allocator's policy behind its program's back.

/// The size from which glibc maps a block of its own (its default starting value).
pub const MMAP_THRESHOLD: usize = 128 * 1024;

/// Fixes glibc's mmap threshold at [`MMAP_THRESHOLD`] for the rest of the process
/// (which also stops it from moving), so that every large block freed goes back to the
/// system at once. True when the allocator took it (glibc), false elsewhere.
pub fn release_large_blocks() -> bool {
    imp::release_large_blocks()
}

/// Returns the free pages of the allocator's heaps to the system (glibc's
/// `malloc_trim(0)`); a no-op elsewhere. Costs a few milliseconds.
pub fn trim() {
    imp::trim()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    use std::ffi::c_int;

    unsafe extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
        fn malloc_trim(pad: usize) -> c_int;
    }

    /// glibc's `M_MMAP_THRESHOLD` (malloc.h).
    const M_MMAP_THRESHOLD: c_int = -3;

    pub(super) fn release_large_blocks() -> bool {
        // SAFETY: mallopt only sets a tunable of the allocator; any value is accepted
        // or refused (returns 0) without other effect.
        unsafe { mallopt(M_MMAP_THRESHOLD, super::MMAP_THRESHOLD as c_int) == 1 }
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
    pub(super) fn release_large_blocks() -> bool {
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
    }
}
