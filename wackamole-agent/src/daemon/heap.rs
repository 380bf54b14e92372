//! Keeping the agent's resident heap near what it holds.
//!
//! Loading the XDP program parses the kernel's BTF (aya's loader always
//! does): some 17 MB of short-lived allocations. glibc's malloc then keeps
//! that memory: freeing a large block raises its mmap and trim thresholds
//! to the block's size (up to 32 MiB), so the freed heap stays resident
//! for the agent's whole life, several MiB at idle. Fixed thresholds turn
//! that adaptation off, and one trim after the load hands back the pages
//! the parse left behind.

/// Blocks at least this large are mapped on their own and unmapped when
/// freed; glibc's initial default, held fixed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const LARGE_BLOCK: libc::c_int = 128 * 1024;

/// Fixes malloc's thresholds. Call once, before the process allocates much.
pub fn fix_thresholds() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; a rejected value
    // leaves the default in place (return value 0), which is harmless.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE_BLOCK);
        libc::mallopt(libc::M_TRIM_THRESHOLD, LARGE_BLOCK);
    }
}

/// Returns freed heap pages to the kernel (after a burst of temporary
/// allocations, such as loading the XDP program).
pub fn release_freed() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it has no
    // preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
}
