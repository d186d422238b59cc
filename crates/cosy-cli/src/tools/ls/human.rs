//! Numbers as `ls` prints them: `-h` sizes (`tools::human`) and block counts converted from
//! 512-byte units (the `total` line).

/// `n` units of `from` bytes, in units of `to` bytes, rounded up (the `total` line without
/// `-h`: `from` 512, `to` 1024).
pub fn blocks(n: u64, from: u64, to: u64) -> String {
    if to >= from && to.is_multiple_of(from) {
        let d = to / from;
        n.div_ceil(d).to_string()
    } else {
        (u128::from(n) * u128::from(from))
            .div_ceil(u128::from(to))
            .to_string()
    }
}

/// `amount` bytes as `-h` prints it (the shared `tools::human`, in powers of 1024).
pub fn human(amount: u128) -> String {
    crate::tools::human::human(u64::try_from(amount).unwrap_or(u64::MAX), 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_rounded_up_as_gnu_rounds_them() {
        assert_eq!(human(0), "0");
        assert_eq!(human(1023), "1023");
        assert_eq!(human(1024), "1.0K");
        assert_eq!(human(1025), "1.1K");
        assert_eq!(human(4096), "4.0K");
        assert_eq!(human(10 * 1024 - 1), "10K");
        assert_eq!(human(10 * 1024), "10K");
        assert_eq!(human(10 * 1024 + 1), "11K");
        assert_eq!(human(1024 * 1024 - 1), "1.0M");
        assert_eq!(human(1_500_000), "1.5M");
        assert_eq!(blocks(9, 512, 1024), "5");
        assert_eq!(blocks(0, 512, 1024), "0");
    }
}
