//! Sizes as gnulib's `human_readable` prints them for du's and ls's `-h` (and du's `--si`):
//! `1.1K`, `9.9M`, `10M`, always rounded up.

/// The prefixes of the powers, from the first (`K`).
const LETTERS: &[u8] = b"KMGTPEZYRQ";

/// gnulib's `human_readable(n, …, human_autoscale | human_SI | human_ceiling, 1, 1)`: divide
/// by `base` while the quotient is at least `base`, keeping the first decimal digit and
/// whether anything below it was lost; a quotient below 10 is printed with one decimal, each
/// rounded up.
pub fn human(n: u64, base: u64) -> String {
    let mut amt = n;
    let mut tenths = 0u64;
    // 0: exact; 1: below half a tenth lost; 2: exactly half; 3: more than half.
    let mut rounding = 0u64;
    let mut exponent = 0usize;
    let mut point = None;
    if base <= amt {
        while base <= amt && exponent < LETTERS.len() {
            let r10 = (amt % base) * 10 + tenths;
            let r2 = (r10 % base) * 2 + (rounding >> 1);
            amt /= base;
            tenths = r10 / base;
            rounding = if r2 < base {
                u64::from(r2 + rounding != 0)
            } else {
                2 + u64::from(base < r2 + rounding)
            };
            exponent += 1;
        }
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
                point = Some(tenths);
                tenths = 0;
                rounding = 0;
            }
        }
    }
    if tenths + rounding > 0 {
        amt += 1;
        if amt == base && exponent < LETTERS.len() {
            exponent += 1;
            point = Some(0);
            amt = 1;
        }
    }
    let mut s = amt.to_string();
    if let Some(t) = point {
        s.push('.');
        s.push(char::from(b'0' + t as u8));
    }
    if exponent > 0 {
        let letter = if base == 1000 && exponent == 1 {
            'k'
        } else {
            char::from(LETTERS[exponent - 1])
        };
        s.push(letter);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powers_of_1000_use_a_small_k() {
        assert_eq!(human(1023, 1000), "1.1k");
        assert_eq!(human(1_048_576, 1000), "1.1M");
        assert_eq!(human(512, 1000), "512");
        assert_eq!(human(1 << 30, 1024), "1.0G");
    }
}
