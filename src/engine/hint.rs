//! Hot-path aids, the only home of such tricks. Each is a hint: no decision reads what it
//! loads, and the logic around a call reads the same with the call removed. Each call site
//! names the benchmark that shows it helps.

/// Ask the CPU to start loading the cache line at `address`: a hint only, which never faults
/// and changes nothing observable (no effect on other architectures).
#[inline(always)]
pub(crate) fn prefetch(address: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching is a hint; it never faults, even on an invalid address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(address.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}

/// Start loading `lines` cache lines from `address` on.
#[inline(always)]
pub(crate) fn prefetch_lines(address: *const u8, lines: usize) {
    for line in 0..lines {
        prefetch(address.wrapping_add(64 * line));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_prefetch_of_any_address_is_harmless() {
        let data = [1u8; 256];
        super::prefetch_lines(data.as_ptr(), 4);
        super::prefetch(std::ptr::null());
        super::prefetch(std::ptr::without_provenance(usize::MAX));
        assert_eq!(data.iter().map(|&byte| u32::from(byte)).sum::<u32>(), 256);
    }
}
