//! Keeping the decoder's freed activations in the process between frames.
//!
//! Every neural frame allocates about 125 MB of short-lived activations (at 256 px: five
//! 16 MB maps at the last level, half that at the one before). glibc's default policy
//! gives that memory back to the OS when the frame frees it (it trims the heap top and
//! unmaps big blocks), so the next frame touches fresh pages: about 31,000 page faults
//! per frame, each zero-filled by the kernel. On the 2-vCPU development VM that is 60 to
//! 80 ms of a 330 ms frame (`edtalk bench` prints `page_faults_per_call`).
//!
//! [`retain_freed_memory`] raises glibc's trim threshold and fixes its mmap threshold, so
//! that freed activations stay in the heap and are reused: 0 faults per frame on the main
//! thread, about 200 on a spawned one (glibc unmaps a thread arena's extra 64 MB heaps when
//! they empty, whatever the threshold). It is process-wide (it changes
//! the allocator for the whole game), so it is a setting:
//! `EdTalkSettings::retain_freed_memory`, on by default for the neural renderer, and the
//! `edtalk` CLI calls it. The cost is that the process keeps up to 256 MB of freed heap
//! instead of returning it. Other platforms' allocators are left alone.

/// Largest free block kept at the heap top instead of returned to the OS.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD: i32 = 256 << 20;
/// Blocks from this size up are still separate mappings (glibc's maximum; a frame's maps
/// are smaller, so they come from the heap).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD: i32 = 32 << 20;

/// Sets glibc's `M_TRIM_THRESHOLD` to 256 MB and `M_MMAP_THRESHOLD` to 32 MB (see the
/// module docs). Returns whether the allocator accepted both; always `false` off
/// Linux/glibc, where nothing is changed. Safe to call more than once.
pub fn retain_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // glibc's <malloc.h> parameter numbers.
        const M_TRIM_THRESHOLD: i32 = -1;
        const M_MMAP_THRESHOLD: i32 = -3;
        // SAFETY: the declaration matches glibc's `int mallopt(int param, int value)`.
        unsafe extern "C" {
            fn mallopt(param: i32, value: i32) -> i32;
        }
        // SAFETY: `mallopt` is declared with glibc's signature (above); it takes the arena
        // lock itself, so calling it from any thread is fine, and it only changes tuning
        // parameters (no memory is freed or moved).
        unsafe {
            mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
                && mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Gives the pages of the heap's free blocks back to the OS (glibc's `malloc_trim(0)`,
/// which also reaches free blocks in the middle of the heap, where the trim threshold does
/// not apply). Called once after a model is built: the raw checkpoint tensors it freed are
/// scattered among the built weights, so the next allocations cannot reuse all of those
/// holes and they would stay resident for nothing. Returns whether memory was released;
/// always `false` off Linux/glibc.
pub fn release_free_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: the declaration matches glibc's `int malloc_trim(size_t pad)`.
        unsafe extern "C" {
            fn malloc_trim(pad: usize) -> i32;
        }
        // SAFETY: `malloc_trim` takes the arena locks itself and only returns the pages of
        // free blocks to the OS; no live allocation is moved or changed.
        unsafe { malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    /// Minor page faults of the calling thread so far.
    #[cfg(target_os = "linux")]
    fn thread_faults() -> u64 {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let fields = stat.rsplit_once(')').unwrap().1;
        fields.split_whitespace().nth(7).unwrap().parse().unwrap()
    }

    /// A frame's worth of big activations: allocated, written, freed. (Three, so that they
    /// fit one of glibc's 64 MB per-thread heaps: a test runs on a worker thread, whose
    /// emptied extra heaps glibc unmaps whatever the trim threshold.)
    fn frame() {
        let maps: Vec<Vec<u8>> = (0..3).map(|_| vec![1u8; 16 << 20]).collect();
        assert!(maps.iter().all(|m| m[(16 << 20) - 1] == 1));
    }

    #[test]
    fn freed_maps_are_reused_without_page_faults() {
        let accepted = super::retain_freed_memory();
        assert_eq!(accepted, cfg!(all(target_os = "linux", target_env = "gnu")));
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            frame();
            let before = thread_faults();
            frame();
            // 48 MB of fresh pages would be about 12,000 faults.
            let faults = thread_faults() - before;
            assert!(faults < 1000, "{faults} page faults for a repeated frame");
        }
    }
}
