//! Shared directory prefixes → one directory fd and relative names.
//!
//! ```text
//!                                  dir = openat cwd "/a/b" O_PATH|O_DIRECTORY|O_CLOEXEC 0
//! f = openat cwd "/a/b/x" …   →    f = openat dir "x" …
//! statx cwd "/a/b/y" …             statx dir "y" …
//! unlinkat cwd "/a/b/z" 0          unlinkat dir "z" 0
//! ```
//!
//! The path operands of `openat`, `openat2`, `statx`, `mkdirat`, `unlinkat` and `renameat2`
//! whose directory is `cwd` and whose path is a constant (not an input) `PREFIX/NAME` are
//! grouped by `PREFIX`; a path variable of a `map … in paths(…)` counts once per path of the
//! list when every path of the list has the same prefix and every use of the variable is such
//! an operand. A prefix with at least three uses gets a directory fd; its uses are rewritten to
//! `NAME` relative to it. The rules that keep the result unchanged:
//!
//! - `NAME` is one component other than `.` and `..`, and `PREFIX` has at least one component,
//!   none of them `.` or `..`; an `openat2` qualifies only with resolve flags 0 (they apply to
//!   the whole path);
//! - the directory is opened right before the first use (in operation order), at the top
//!   level — or right before a `paths` map whose body starts with it —, at a point that runs at
//!   most once and that dominates every use: if the directory cannot be opened, the run stops
//!   there, where the first use would have failed, with the same errno (`ENOENT`, `ENOTDIR`,
//!   `ELOOP`, …); the open's origin is that first use;
//! - nothing can rename or remove a directory on the way to the prefix: every path operand of
//!   every `unlinkat` and `renameat2` of the compound must itself be a `cwd`-relative constant
//!   of this form (else the pass does nothing), and a prefix is skipped when one of them names
//!   it or one of its ancestors (names are compared as spelled: a symlink or a different
//!   spelling of the same directory is not recognised);
//! - the compound stops at the first failure (mode `stop`: in mode `continue` a failed
//!   directory open would add errors).
//!
//! One rewrite is one path operand rewritten.

use std::collections::{BTreeMap, BTreeSet};

use cosy_model::{Arg, DataId, ErrorMode, FdRef, MapSource, Op, PathRef, PathVar, Ret, Sys, Value};

use crate::analysis::{
    Cfg, Edits, NewOp, Program, data_const, fresh_slot, imm_of, input_data, paths_map,
};

/// The (directory, path) operand pairs of a call.
fn path_pairs(call: Sys) -> &'static [(usize, usize)] {
    match call {
        Sys::Openat | Sys::Openat2 | Sys::Statx | Sys::Mkdirat | Sys::Unlinkat => &[(0, 1)],
        Sys::Renameat2 => &[(0, 1), (2, 3)],
        _ => &[],
    }
}

fn components(path: &[u8]) -> Vec<&[u8]> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty())
        .collect()
}

/// `PREFIX/NAME` split at the last slash, when both are acceptable.
fn split(path: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    if path.contains(&0) {
        return None;
    }
    let pos = path.iter().rposition(|&b| b == b'/')?;
    let (prefix, name) = (&path[..pos], &path[pos + 1..]);
    if name.is_empty() || name == b"." || name == b".." {
        return None;
    }
    let comps = components(prefix);
    if comps.is_empty() || comps.iter().any(|c| *c == b"." || *c == b"..") {
        return None;
    }
    Some((prefix.to_vec(), name.to_vec()))
}

/// Whether the path `a` is `b` or one of its ancestors (as spelled).
fn is_ancestor_or_self(a: &[u8], b: &[u8]) -> bool {
    if a.starts_with(b"/") != b.starts_with(b"/") {
        return true;
    }
    let (ca, cb) = (components(a), components(b));
    ca.len() <= cb.len() && ca.iter().zip(&cb).all(|(x, y)| x == y)
}

#[derive(Clone, Debug)]
enum Kind {
    /// A constant path: the new name.
    Direct(Vec<u8>),
    /// The variable of the `paths` map at this index.
    Var(usize),
}

#[derive(Clone, Debug)]
struct Site {
    op: usize,
    dir: usize,
    path: usize,
    prefix: Vec<u8>,
    kind: Kind,
    /// Uses it counts for.
    uses: usize,
}

/// The enclosing `paths` map that binds `v` at operation `t`.
fn binding_map(p: &Program, g: &Cfg, t: usize, v: PathVar) -> Option<usize> {
    let mut m = g.map_of[t];
    while let Some(b) = m {
        if let Some((_, var)) = paths_map(&p.c.ops[b])
            && var == v
        {
            return Some(b);
        }
        if matches!(
            &p.c.ops[b],
            Op::MapBegin {
                source: MapSource::Dirents { name, .. },
                ..
            } if *name == v
        ) {
            return None;
        }
        m = g.map_of[b];
    }
    None
}

/// The common prefix of a `paths` map's list, if every path has one and none is an input.
fn list_prefix(p: &Program, list: &[DataId], inputs: &BTreeSet<DataId>) -> Option<Vec<u8>> {
    let mut common: Option<Vec<u8>> = None;
    for d in list {
        if inputs.contains(d) {
            return None;
        }
        let (prefix, _) = split(p.c.data.get(d.index())?)?;
        match &common {
            None => common = Some(prefix),
            Some(c) if *c == prefix => {}
            Some(_) => return None,
        }
    }
    common
}

/// Every qualifying site, and every full path an `unlinkat`/`renameat2` may remove or
/// rename; `None` when such a call has an operand that is not a site (then the pass does
/// nothing).
fn sites(p: &Program, g: &Cfg) -> Option<(Vec<Site>, Vec<Vec<u8>>)> {
    let inputs = input_data(&p.c);
    let mut out = Vec::new();
    let mut changed = Vec::new();
    let mut var_ok: BTreeMap<PathVar, bool> = BTreeMap::new();
    for (t, op) in p.c.ops.iter().enumerate() {
        let Op::Sys { call, args, .. } = op else {
            continue;
        };
        let namespace = matches!(call, Sys::Unlinkat | Sys::Renameat2);
        let resolve_ok = *call != Sys::Openat2 || imm_of(args.get(4)) == Some(0);
        let mut here = Vec::new();
        for &(dir, path) in path_pairs(*call) {
            let site = (|| {
                if args.get(dir) != Some(&Arg::Fd(FdRef::Cwd)) || !resolve_ok {
                    return None;
                }
                match args.get(path)? {
                    Arg::Path(PathRef::Data(d)) => {
                        if inputs.contains(d) {
                            return None;
                        }
                        let (prefix, name) = split(p.c.data.get(d.index())?)?;
                        Some(Site {
                            op: t,
                            dir,
                            path,
                            prefix,
                            kind: Kind::Direct(name),
                            uses: 1,
                        })
                    }
                    Arg::Path(PathRef::Var(v)) => {
                        let b = binding_map(p, g, t, *v)?;
                        let (list, _) = paths_map(&p.c.ops[b])?;
                        let prefix = list_prefix(p, list, &inputs)?;
                        Some(Site {
                            op: t,
                            dir,
                            path,
                            prefix,
                            kind: Kind::Var(b),
                            uses: list.len(),
                        })
                    }
                    _ => None,
                }
            })();
            match site {
                Some(s) => {
                    if namespace {
                        changed.extend(namespace_paths(p, &s));
                    }
                    here.push(s);
                }
                None if namespace => return None,
                None => {}
            }
        }
        // Every use of a path variable must be a site for its map to be rewritten.
        for (k, a) in args.iter().enumerate() {
            if let Arg::Path(PathRef::Var(v)) = a {
                let is_site = here.iter().any(|s| s.path == k);
                *var_ok.entry(*v).or_insert(true) &= is_site;
            }
        }
        out.extend(here);
    }
    out.retain(|s| match s.kind {
        Kind::Var(b) => paths_map(&p.c.ops[b]).is_some_and(|(_, v)| var_ok.get(&v) == Some(&true)),
        Kind::Direct(_) => true,
    });
    Some((out, changed))
}

/// The full paths an `unlinkat`/`renameat2` site may rename or remove.
fn namespace_paths(p: &Program, s: &Site) -> Vec<Vec<u8>> {
    match &s.kind {
        Kind::Direct(name) => {
            let mut v = s.prefix.clone();
            v.push(b'/');
            v.extend_from_slice(name);
            vec![v]
        }
        Kind::Var(b) => paths_map(&p.c.ops[*b])
            .map(|(list, _)| {
                list.iter()
                    .filter_map(|d| p.c.data.get(d.index()))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Where the directory of a prefix first used at `u0` is opened, if it can be.
fn open_point(p: &Program, g: &Cfg, u0: usize) -> Option<usize> {
    let point = match g.map_of[u0] {
        None => u0,
        Some(b) => {
            let nonempty = paths_map(&p.c.ops[b]).is_some_and(|(list, _)| !list.is_empty());
            if g.map_of[b].is_none() && u0 == b + 1 && nonempty {
                b
            } else {
                return None;
            }
        }
    };
    (!g.in_cycle(point)).then_some(point)
}

/// Runs the pass; returns the number of path operands rewritten.
pub(crate) fn run(p: &mut Program) -> usize {
    if p.c.mode != ErrorMode::Stop {
        return 0;
    }
    let Some(g) = Cfg::new(&p.c) else { return 0 };
    let Some((sites, changed)) = sites(p, &g) else {
        return 0;
    };
    let mut by_prefix: BTreeMap<Vec<u8>, Vec<usize>> = BTreeMap::new();
    for (k, s) in sites.iter().enumerate() {
        by_prefix.entry(s.prefix.clone()).or_default().push(k);
    }
    let idom = g.dominators();
    let backup = p.clone();
    let mut opens: Vec<(usize, NewOp)> = Vec::new();
    let mut count = 0;
    let mut lists_done: BTreeSet<usize> = BTreeSet::new();
    for (prefix, members) in &by_prefix {
        let uses: usize = members.iter().map(|&k| sites[k].uses).sum();
        if uses < 3 || changed.iter().any(|c| is_ancestor_or_self(c, prefix)) {
            continue;
        }
        let Some(u0) = members.iter().map(|&k| sites[k].op).min() else {
            continue;
        };
        let Some(point) = open_point(p, &g, u0) else {
            continue;
        };
        if !members
            .iter()
            .all(|&k| Cfg::dominates(&idom, point, sites[k].op))
        {
            continue;
        }
        let Some(slot) = fresh_slot(&mut p.c, "dir") else {
            break;
        };
        let Some(pd) = data_const(&mut p.c, prefix) else {
            break;
        };
        let flags = i64::from(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC);
        let open = Op::Sys {
            call: Sys::Openat,
            args: vec![
                Arg::Fd(FdRef::Cwd),
                Arg::Path(PathRef::Data(pd)),
                Arg::Value(Value::Imm(flags)),
                Arg::Value(Value::Imm(0)),
            ],
            ret: Ret::Fd(slot),
        };
        opens.push((point, NewOp::plain(open, p.origin[u0])));
        for &k in members {
            let s = &sites[k];
            let new_path = match &s.kind {
                Kind::Direct(name) => match data_const(&mut p.c, name) {
                    Some(d) => Some(Arg::Path(PathRef::Data(d))),
                    None => {
                        *p = backup;
                        return 0;
                    }
                },
                Kind::Var(b) => {
                    if lists_done.insert(*b) {
                        let Some((list, _)) = paths_map(&p.c.ops[*b]) else {
                            continue;
                        };
                        let list = list.to_vec();
                        let mut names = Vec::with_capacity(list.len());
                        for d in list {
                            let name =
                                p.c.data
                                    .get(d.index())
                                    .and_then(|bytes| split(bytes))
                                    .map(|(_, name)| name);
                            match name.and_then(|name| data_const(&mut p.c, &name)) {
                                Some(id) => names.push(id),
                                None => {
                                    *p = backup;
                                    return 0;
                                }
                            }
                        }
                        if let Op::MapBegin {
                            source: MapSource::Paths { list, .. },
                            ..
                        } = &mut p.c.ops[*b]
                        {
                            *list = names;
                        }
                    }
                    None
                }
            };
            if let Op::Sys { args, .. } = &mut p.c.ops[s.op] {
                args[s.dir] = Arg::Fd(FdRef::Slot(slot));
                if let Some(np) = new_path {
                    args[s.path] = np;
                }
                count += 1;
            }
        }
    }
    if count == 0 {
        *p = backup;
        return 0;
    }
    let mut edits = Edits::new(p);
    for (point, op) in opens.into_iter().rev() {
        edits.insert_before(point, vec![op]);
    }
    if edits.apply(p) {
        count
    } else {
        *p = backup;
        0
    }
}

#[cfg(test)]
mod tests {
    use cosy_model::flags::{AtFlags, Mode, OFlags, StatxFlags};
    use cosy_model::{Arg, Builder, Compound, FdRef, MapSource, Op, PathRef, Ret, Sys};

    use crate::analysis::testing::{calls, only};

    const RD: OFlags = OFlags::RDONLY;

    fn path_of(c: &Compound, a: &Arg) -> Vec<u8> {
        match a {
            Arg::Path(PathRef::Data(d)) => c.data[d.index()].clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn three_paths_in_one_directory_share_a_directory_fd() {
        let mut b = Builder::new();
        let st = b.buffer("st", 256);
        b.getpid();
        let x = b.path("/srv/data/x");
        let y = b.path("/srv/data/y");
        let z = b.path("/srv/data/z");
        let other = b.path("/srv/other/w");
        let f = b.openat(FdRef::Cwd, x, RD, Mode::empty());
        b.statx(FdRef::Cwd, y, AtFlags::empty(), StatxFlags::BASIC_STATS, st);
        b.unlinkat(FdRef::Cwd, z, AtFlags::empty());
        b.statx(
            FdRef::Cwd,
            other,
            AtFlags::empty(),
            StatxFlags::BASIC_STATS,
            st,
        );
        b.close(f);
        let c = b.finish();
        let o = only(&c, "dir_prefix");
        assert_eq!(o.applied, [("dir_prefix", 3)]);
        let ops = &o.compound.ops;
        // The directory is opened right before its first use, which is its origin.
        assert_eq!(
            calls(&o.compound),
            [
                Sys::Getpid,
                Sys::Openat,
                Sys::Openat,
                Sys::Statx,
                Sys::Unlinkat,
                Sys::Statx,
                Sys::Close
            ]
        );
        assert_eq!(o.origin, [0, 1, 1, 2, 3, 4, 5]);
        let Op::Sys { args, ret, .. } = &ops[1] else {
            panic!()
        };
        assert_eq!(args[0], Arg::Fd(FdRef::Cwd));
        assert_eq!(path_of(&o.compound, &args[1]), b"/srv/data");
        let Ret::Fd(dir) = ret else { panic!() };
        for (k, name) in [(2, "x"), (3, "y"), (4, "z")] {
            let Op::Sys { args, .. } = &ops[k] else {
                panic!()
            };
            assert_eq!(args[0], Arg::Fd(FdRef::Slot(*dir)));
            assert_eq!(path_of(&o.compound, &args[1]), name.as_bytes());
        }
        // The path under another directory is left alone.
        let Op::Sys { args, .. } = &ops[5] else {
            panic!()
        };
        assert_eq!(args[0], Arg::Fd(FdRef::Cwd));
    }

    #[test]
    fn a_paths_map_counts_each_path() {
        let mut b = Builder::new();
        let st = b.local_buffer("st", 256);
        b.map_paths(["/srv/a/1", "/srv/a/2", "/srv/a/3"], |b, p| {
            b.statx(FdRef::Cwd, p, AtFlags::empty(), StatxFlags::BASIC_STATS, st);
        });
        let c = b.finish();
        let o = only(&c, "dir_prefix");
        assert_eq!(o.applied, [("dir_prefix", 1)]);
        let ops = &o.compound.ops;
        assert!(matches!(
            ops[0],
            Op::Sys {
                call: Sys::Openat,
                ..
            }
        ));
        assert_eq!(o.origin, [1, 0, 1, 2]);
        let Op::MapBegin {
            source: MapSource::Paths { list, .. },
            end,
        } = &ops[1]
        else {
            panic!()
        };
        assert_eq!(*end, 3);
        let names: Vec<&[u8]> = list
            .iter()
            .map(|d| o.compound.data[d.index()].as_slice())
            .collect();
        assert_eq!(names, [b"1", b"2", b"3"]);
        let Op::Sys { args, .. } = &ops[2] else {
            panic!()
        };
        assert!(matches!(args[0], Arg::Fd(FdRef::Slot(_))));
    }

    #[test]
    fn not_with_fewer_than_three_uses() {
        let mut b = Builder::new();
        let st = b.buffer("st", 256);
        let x = b.path("/srv/data/x");
        let y = b.path("/srv/data/y");
        b.statx(FdRef::Cwd, x, AtFlags::empty(), StatxFlags::BASIC_STATS, st);
        b.statx(FdRef::Cwd, y, AtFlags::empty(), StatxFlags::BASIC_STATS, st);
        let c = b.finish();
        let o = only(&c, "dir_prefix");
        assert_eq!(o.compound, c);
        assert_eq!(o.applied, [("dir_prefix", 0)]);
    }

    #[test]
    fn not_when_the_directory_may_change_or_the_path_is_an_input() {
        // An unlinkat of the directory itself.
        let mut b = Builder::new();
        let st = b.buffer("st", 256);
        for p in ["/srv/d/x", "/srv/d/y", "/srv/d/z"] {
            let p = b.path(p);
            b.statx(FdRef::Cwd, p, AtFlags::empty(), StatxFlags::BASIC_STATS, st);
        }
        let d = b.path("/srv/d");
        b.unlinkat(FdRef::Cwd, d, AtFlags::REMOVEDIR);
        let c = b.finish();
        assert_eq!(only(&c, "dir_prefix").compound, c);

        // An unlinkat through a descriptor (whatever it removes is unknown).
        let mut b = Builder::new();
        let st = b.buffer("st", 256);
        for p in ["/srv/d/x", "/srv/d/y", "/srv/d/z"] {
            let p = b.path(p);
            b.statx(FdRef::Cwd, p, AtFlags::empty(), StatxFlags::BASIC_STATS, st);
        }
        let root = b.path("/");
        let r = b.openat(FdRef::Cwd, root, RD, Mode::empty());
        let srv = b.path("srv");
        b.unlinkat(r, srv, AtFlags::REMOVEDIR);
        let c = b.finish();
        assert_eq!(only(&c, "dir_prefix").compound, c);

        // Path inputs can be overridden.
        let mut b = Builder::new();
        let st = b.buffer("st", 256);
        for (k, p) in ["/srv/d/x", "/srv/d/y", "/srv/d/z"].into_iter().enumerate() {
            let p = b.input_path(&format!("p{k}"), p);
            b.statx(FdRef::Cwd, p, AtFlags::empty(), StatxFlags::BASIC_STATS, st);
        }
        let c = b.finish();
        assert_eq!(only(&c, "dir_prefix").compound, c);
    }

    #[test]
    fn not_when_the_first_use_is_in_a_loop() {
        let mut b = Builder::new();
        let st = b.buffer("st", 256);
        let i = b.value("i", 0);
        b.do_while(10, |b| {
            for p in ["/srv/d/x", "/srv/d/y", "/srv/d/z"] {
                let p = b.path(p);
                b.statx(FdRef::Cwd, p, AtFlags::empty(), StatxFlags::BASIC_STATS, st);
            }
            b.accumulate(i, 1);
            i.lt(3)
        });
        let c = b.finish();
        assert_eq!(only(&c, "dir_prefix").compound, c);
    }
}
