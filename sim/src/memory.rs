//! Process-wide memory settings for the simulator binaries.

/// Turns transparent huge pages off for this process. The simulator allocates and frees JSON
/// trees at a high rate; with huge pages, every page the allocator gives back and takes again
/// is a fresh 2 MiB page the kernel zeroes. The kernel's share of the benchmark's run was
/// about 13 % with them (1.9 GB zeroed for a 241 MiB peak) and is about 4 % without them
/// (BENCHMARKS.md).
pub fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and only sets a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}
