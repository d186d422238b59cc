//! Numbers as gnulib's `human_readable` prints them for `ls`: `-h` sizes in powers of 1024
//! with one decimal below 10 (`1.1K`, `12K`, `4.0M`), always rounded up, and block counts
//! converted from 512-byte units (the `total` line).

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

/// `amount` bytes as `-h` prints it: below 1024 as is, else scaled by 1024 with a suffix
/// (`K`, `M`, …), one decimal when the scaled value is below 10, rounded up.
pub fn human(amount: u128) -> String {
    const BASE: u128 = 1024;
    const SUFFIX: &[u8] = b"KMGTPEZYRQ";
    let mut amt = amount;
    if amt < BASE {
        return amt.to_string();
    }
    let (mut tenths, mut rounding) = (0u128, 0u128);
    let mut exponent = 0usize;
    // gnulib's loop: the digit below the point and whether anything is left below it.
    while amt >= BASE && exponent < SUFFIX.len() {
        let r10 = (amt % BASE) * 10 + tenths;
        let r2 = (r10 % BASE) * 2 + (rounding >> 1);
        amt /= BASE;
        tenths = r10 / BASE;
        rounding = if r2 < BASE {
            u128::from(r2 + rounding != 0)
        } else {
            2 + u128::from(BASE < r2 + rounding)
        };
        exponent += 1;
    }
    let mut decimal = None;
    if amt < 10 {
        if rounding > 0 {
            tenths += 1;
            rounding = 0;
            if tenths == 10 {
                amt += 1;
                tenths = 0;
            }
        }
        if amt < 10 {
            decimal = Some(tenths);
            tenths = 0;
            rounding = 0;
        }
    }
    if tenths + rounding > 0 {
        amt += 1;
        if amt == BASE && exponent < SUFFIX.len() {
            exponent += 1;
            amt = 1;
            decimal = Some(0);
        }
    }
    let suffix = SUFFIX[exponent - 1] as char;
    match decimal {
        Some(t) => format!("{amt}.{t}{suffix}"),
        None => format!("{amt}{suffix}"),
    }
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
