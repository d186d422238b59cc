//! Sizes printed as GNU du prints them: whole units of the block size rounded up, or `-h`'s
//! human sizes (gnulib's `human_readable` with `human_ceiling`: `1.1K`, `9.9M`, `10M`).

/// How sizes are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Units {
    /// Whole blocks of this many bytes, rounded up (`-k`: 1024, `-b`: 1, `-m`: 1 MiB).
    Blocks(u64),
    /// Powers of 1024 with a letter (`-h`).
    Human,
    /// Powers of 1000 with a letter (`--si`).
    Si,
}

/// `bytes` as du prints it in `units`.
pub fn format(bytes: u64, units: Units) -> String {
    match units {
        Units::Blocks(b) => bytes.div_ceil(b.max(1)).to_string(),
        Units::Human => human(bytes, 1024),
        Units::Si => human(bytes, 1000),
    }
}

/// The prefixes of the powers, from the first (`K`).
const LETTERS: &[u8] = b"KMGTPEZYRQ";

/// gnulib's `human_readable(n, …, human_autoscale | human_SI | human_ceiling, 1, 1)`: divide
/// by `base` while the quotient is at least `base`, keeping the first decimal digit and
/// whether anything below it was lost; a quotient below 10 is printed with one decimal, each
/// rounded up.
fn human(n: u64, base: u64) -> String {
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
    fn human_sizes_round_up_as_du_does() {
        let cases = [
            (0, "0"),
            (1, "1"),
            (1023, "1023"),
            (1024, "1.0K"),
            (1025, "1.1K"),
            (1536, "1.5K"),
            (10188, "10K"),
            (10239, "10K"),
            (10240, "10K"),
            (10241, "11K"),
            (1_048_575, "1.0M"),
            (1_048_576, "1.0M"),
            (10_380_902, "9.9M"),
            (10_380_903, "10M"),
            (107_374_182, "103M"),
            (1 << 30, "1.0G"),
            (5_000_000_000, "4.7G"),
        ];
        for (n, s) in cases {
            assert_eq!(format(n, Units::Human), s, "{n}");
        }
        assert_eq!(format(1023, Units::Si), "1.1k");
        assert_eq!(format(1_048_576, Units::Si), "1.1M");
        assert_eq!(format(512, Units::Si), "512");
    }

    #[test]
    fn blocks_round_up() {
        assert_eq!(format(0, Units::Blocks(1024)), "0");
        assert_eq!(format(1, Units::Blocks(1024)), "1");
        assert_eq!(format(4102, Units::Blocks(1024)), "5");
        assert_eq!(format(4102, Units::Blocks(1)), "4102");
    }
}
