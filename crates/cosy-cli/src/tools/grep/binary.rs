//! Where ripgrep stops in a file with a NUL byte.
//!
//! ripgrep reads a file through a line buffer (64 KiB at first, grown threefold when a line
//! does not fit; the first read is of 3 bytes, to sniff a byte order mark) and checks each
//! read's new bytes for a NUL before searching the buffer's complete lines. In a recursive
//! search it quits at the first read holding a NUL; explicitly given files are searched on
//! until a match shows the file is binary. What it printed depends on where those reads fell,
//! so the same reads are replayed here over the whole file.

use memchr::memrchr;

/// The capacity of ripgrep's line buffer at first.
pub const BUFFER: usize = 64 << 10;

/// The bytes of `data` whose complete lines ripgrep searched before the read that brought the
/// byte at `nul` in (a line boundary: the lines of `data[..result]` were searched).
pub fn searched_before(data: &[u8], nul: usize) -> usize {
    let mut cap = BUFFER;
    let mut searched = 0;
    let mut end = 0;
    let mut first = true;
    loop {
        loop {
            let len = end - searched;
            if len >= cap {
                cap += 2 * cap;
            }
            let free = cap - len;
            let want = if first { free.min(3) } else { free };
            first = false;
            let n = want.min(data.len() - end);
            if n == 0 {
                return searched;
            }
            let old = end;
            end += n;
            if (old..end).contains(&nul) {
                return searched;
            }
            if let Some(i) = memrchr(b'\n', &data[old..end]) {
                searched = old + i + 1;
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nul_in_the_first_read_stops_before_any_line() {
        assert_eq!(searched_before(b"ab\0c\nd\n", 2), 0);
        // The first read is of 3 bytes: `a\n` is searched before the NUL is seen (as
        // `rg a` prints `a` and its warning for this file).
        assert_eq!(searched_before(b"a\nb\0c\n", 3), 2);
    }

    #[test]
    fn lines_of_earlier_reads_are_searched() {
        let mut d = vec![b'x'; 200_000];
        for i in (99..d.len()).step_by(100) {
            d[i] = b'\n';
        }
        d[150_000] = 0;
        // First read: 3 bytes, no newline; second fills the 64 KiB buffer.
        let s = searched_before(&d, 150_000);
        assert_eq!(s % 100, 0);
        assert!(s > 0 && s < 150_000, "{s}");
    }
}
