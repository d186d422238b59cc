//! Sizes printed as GNU du prints them: whole units of the block size rounded up, or `-h`'s
//! human sizes (gnulib's `human_readable` with `human_ceiling`: `1.1K`, `9.9M`, `10M`).

use crate::tools::human::human;

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
