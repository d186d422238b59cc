//! What a map iterates over, evaluated: paths, offsets, a range, or the entries of a
//! `getdents64` buffer (`linux_dirent64` records).

use cosy_model::{BufRange, DataId, MapSource, PathVar, Reg, Value};

use crate::outcome::Error;

/// One directory entry of a `getdents64` buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// `d_ino`.
    pub ino: u64,
    /// `d_type`.
    pub kind: u8,
    /// The name (up to its NUL).
    pub name: Vec<u8>,
}

/// Parses `linux_dirent64` records (`d_ino` u64 at 0, `d_off` at 8, `d_reclen` u16 at 16,
/// `d_type` at 18, the name from 19 to its NUL), skipping `.` and `..`. A record shorter than
/// 20 bytes or running past `bytes` is an error: its offset and what is wrong.
pub fn parse_dirents(bytes: &[u8]) -> Result<Vec<DirEntry>, String> {
    let mut out = Vec::new();
    let mut off = 0usize;
    while off < bytes.len() {
        let rest = &bytes[off..];
        if rest.len() < 20 {
            return Err(format!(
                "the directory record at offset {off} runs past the {} bytes of the range",
                bytes.len()
            ));
        }
        let reclen = usize::from(u16::from_le_bytes([rest[16], rest[17]]));
        if reclen < 20 {
            return Err(format!(
                "the directory record at offset {off} has d_reclen {reclen} (< 20)"
            ));
        }
        let Some(rec) = rest.get(..reclen) else {
            return Err(format!(
                "the directory record at offset {off} (d_reclen {reclen}) runs past the {} bytes of the range",
                bytes.len()
            ));
        };
        let mut ino = [0u8; 8];
        ino.copy_from_slice(&rec[..8]);
        let area = &rec[19..];
        let name = match memchr::memchr(0, area) {
            Some(n) => &area[..n],
            None => area,
        };
        if name != b"." && name != b".." {
            out.push(DirEntry {
                ino: u64::from_le_bytes(ino),
                kind: rec[18],
                name: name.to_vec(),
            });
        }
        off += reclen;
    }
    Ok(out)
}

/// The items of a running map.
pub(crate) enum Items {
    Paths {
        var: PathVar,
        list: Vec<DataId>,
        pos: usize,
    },
    Offsets {
        var: Reg,
        list: Vec<i64>,
        pos: usize,
    },
    Range {
        var: Reg,
        next: Option<i64>,
        end: i64,
        step: i64,
    },
    Dirents {
        name: PathVar,
        kind: Reg,
        ino: Reg,
        list: Vec<DirEntry>,
        pos: usize,
    },
}

/// What one item binds.
pub(crate) enum Binding {
    Path(PathVar, Vec<u8>),
    Reg(Reg, i64),
    Dirent(PathVar, Vec<u8>, Reg, i64, Reg, i64),
}

impl Items {
    /// Evaluates a map's source (`val` gives operand values, `dirents` parses a `dirents`
    /// source's range) at operation `pc`.
    pub(crate) fn new(
        pc: usize,
        source: &MapSource,
        val: impl Fn(&Value) -> i64,
        dirents: impl FnOnce(&BufRange) -> Result<Vec<DirEntry>, Error>,
    ) -> Result<Items, Error> {
        Ok(match source {
            MapSource::Paths { list, var } => Items::Paths {
                var: *var,
                list: list.clone(),
                pos: 0,
            },
            MapSource::Offsets { list, var } => Items::Offsets {
                var: *var,
                list: list.clone(),
                pos: 0,
            },
            MapSource::Range {
                start,
                end,
                step,
                var,
            } => {
                let step = val(step);
                if step <= 0 {
                    return Err(Error::Arith { op: pc as u32 });
                }
                Items::Range {
                    var: *var,
                    next: Some(val(start)),
                    end: val(end),
                    step,
                }
            }
            MapSource::Dirents {
                buf,
                name,
                kind,
                ino,
            } => Items::Dirents {
                name: *name,
                kind: *kind,
                ino: *ino,
                list: dirents(buf)?,
                pos: 0,
            },
        })
    }

    /// No items (the frame of a lane that runs one item, bound by its driver).
    pub(crate) fn none() -> Items {
        Items::Offsets {
            var: Reg(0),
            list: Vec::new(),
            pos: 0,
        }
    }

    /// How many items are left, if known cheaply.
    pub(crate) fn remaining(&self) -> usize {
        match self {
            Items::Paths { list, pos, .. } => list.len().saturating_sub(*pos),
            Items::Offsets { list, pos, .. } => list.len().saturating_sub(*pos),
            Items::Dirents { list, pos, .. } => list.len().saturating_sub(*pos),
            Items::Range {
                next, end, step, ..
            } => match next {
                Some(n) if n < end => {
                    let span = (*end as i128 - *n as i128) as u128;
                    let k = span.div_ceil(*step as u128);
                    usize::try_from(k).unwrap_or(usize::MAX)
                }
                _ => 0,
            },
        }
    }

    /// Splits the items into at most `k` runs of consecutive items, in order.
    pub(crate) fn split(self, k: usize) -> Vec<Items> {
        let n = self.remaining();
        let k = k.clamp(1, n.max(1));
        // Sizes: the first `n % k` runs get one item more.
        let sizes = (0..k).map(move |i| n / k + usize::from(i < n % k));
        match self {
            Items::Paths { var, list, pos } => chunks(list, pos, sizes)
                .map(|list| Items::Paths { var, list, pos: 0 })
                .collect(),
            Items::Offsets { var, list, pos } => chunks(list, pos, sizes)
                .map(|list| Items::Offsets { var, list, pos: 0 })
                .collect(),
            Items::Dirents {
                name,
                kind,
                ino,
                list,
                pos,
            } => chunks(list, pos, sizes)
                .map(|list| Items::Dirents {
                    name,
                    kind,
                    ino,
                    list,
                    pos: 0,
                })
                .collect(),
            Items::Range {
                var,
                next,
                end,
                step,
            } => {
                let mut at = next;
                sizes
                    .map(|len| {
                        let start = at;
                        // The run ends after `len` steps (or at the map's end).
                        let stop = start
                            .and_then(|s| s.checked_add(step.checked_mul(len as i64)?))
                            .map_or(end, |e| e.min(end));
                        at = start.map(|_| stop);
                        Items::Range {
                            var,
                            next: start,
                            end: stop,
                            step,
                        }
                    })
                    .collect()
            }
        }
    }

    /// The next item's binding.
    pub(crate) fn next(&mut self, data: &[Vec<u8>]) -> Option<Binding> {
        match self {
            Items::Paths { var, list, pos } => {
                let d = list.get(*pos)?;
                *pos += 1;
                let bytes = data.get(d.index()).cloned().unwrap_or_default();
                Some(Binding::Path(*var, bytes))
            }
            Items::Offsets { var, list, pos } => {
                let v = *list.get(*pos)?;
                *pos += 1;
                Some(Binding::Reg(*var, v))
            }
            Items::Range {
                var,
                next,
                end,
                step,
            } => {
                let v = (*next).filter(|v| v < end)?;
                *next = v.checked_add(*step);
                Some(Binding::Reg(*var, v))
            }
            Items::Dirents {
                name,
                kind,
                ino,
                list,
                pos,
            } => {
                let e = list.get_mut(*pos)?;
                *pos += 1;
                Some(Binding::Dirent(
                    *name,
                    std::mem::take(&mut e.name),
                    *kind,
                    i64::from(e.kind),
                    *ino,
                    e.ino as i64,
                ))
            }
        }
    }
}

/// `list[pos..]` cut into consecutive runs of `sizes`.
fn chunks<T>(
    mut list: Vec<T>,
    pos: usize,
    sizes: impl Iterator<Item = usize>,
) -> impl Iterator<Item = Vec<T>> {
    list.drain(..pos.min(list.len()));
    let mut rest = list.into_iter();
    sizes.map(move |n| rest.by_ref().take(n).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(ino: u64, kind: u8, name: &[u8]) -> Vec<u8> {
        let reclen = (19 + name.len() + 1).div_ceil(8) * 8;
        let mut r = vec![0u8; reclen];
        r[..8].copy_from_slice(&ino.to_le_bytes());
        r[16..18].copy_from_slice(&(reclen as u16).to_le_bytes());
        r[18] = kind;
        r[19..19 + name.len()].copy_from_slice(name);
        r
    }

    #[test]
    fn dirents_parse_and_skip_dots() {
        let mut b = record(1, 4, b".");
        b.extend(record(2, 4, b".."));
        b.extend(record(3, 8, b"file"));
        b.extend(record(4, 4, b"a-longer-directory-name"));
        let e = parse_dirents(&b).unwrap();
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[0],
            DirEntry {
                ino: 3,
                kind: 8,
                name: b"file".to_vec()
            }
        );
        assert_eq!(e[1].name, b"a-longer-directory-name");
        assert!(parse_dirents(&b[..b.len() - 1]).is_err());
        let mut bad = record(1, 8, b"x");
        bad[16] = 19;
        assert!(parse_dirents(&bad).unwrap_err().contains("d_reclen 19"));
        assert_eq!(parse_dirents(&[]), Ok(vec![]));
    }

    proptest! {
        #[test]
        fn dirent_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_dirents(&bytes);
        }
    }
}
