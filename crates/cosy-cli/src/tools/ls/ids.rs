//! Owner and group names from `/etc/passwd` and `/etc/group`, each read once and only when a
//! long listing needs names; an id the files do not name is printed as its number.

use std::collections::HashMap;

/// The names of user or group ids.
#[derive(Debug, Default)]
pub struct Names {
    by_id: HashMap<u32, Vec<u8>>,
}

impl Names {
    /// The names of a `name:password:id:…` file (`/etc/passwd`, `/etc/group`): the first
    /// line naming an id wins, as getpwuid(3) answers.
    pub fn parse(text: &[u8]) -> Names {
        let mut by_id = HashMap::new();
        for line in text.split(|&c| c == b'\n') {
            let mut fields = line.split(|&c| c == b':');
            let (Some(name), Some(_), Some(id)) = (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            let Some(id) = std::str::from_utf8(id)
                .ok()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if name.is_empty() || name.starts_with(b"+") || name.starts_with(b"-") {
                continue;
            }
            by_id.entry(id).or_insert_with(|| name.to_vec());
        }
        Names { by_id }
    }

    /// The name of `id`, if it has one.
    pub fn get(&self, id: u32) -> Option<&[u8]> {
        self.by_id.get(&id).map(Vec::as_slice)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_name_of_an_id_wins_and_bad_lines_are_skipped() {
        let n = Names::parse(
            b"root:x:0:0::/root:/bin/sh\nbad\nalias:x:0:0::/:/bin/sh\nnobody:x:65534:65534::/:/x",
        );
        assert_eq!(n.get(0), Some(&b"root"[..]));
        assert_eq!(n.get(65534), Some(&b"nobody"[..]));
        assert_eq!(n.get(7), None);
    }
}
