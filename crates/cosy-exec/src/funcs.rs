//! Functions a compound can call: the built-ins (`find`, `count_lines`, `checksum`) and Rust
//! closures the program registers by name.
//!
//! A function receives its operands as [`FnArgs`]: integer operands as [`FnArg::Int`], buffer
//! ranges and data constants (path operands, e.g. a needle) as [`FnArg::Bytes`]. A function
//! registered with [`Functions::register_mut`] gets the **last buffer-range operand** writable
//! as [`FnArgs::out`] instead (it is left out of [`FnArgs::args`]), so it can fill a buffer,
//! e.g. with data to write. Its result goes to the call's register; an `Err(message)` (or a
//! panic) stops the run with `Error::Function`.
//!
//! ```
//! use cosy_exec::{FnArg, FnArgs, Functions};
//! let mut f = Functions::new();
//! f.register("sum", |a: &FnArgs| Ok(a.ints().iter().sum()));
//! f.register_mut("fill", |a: &mut FnArgs| {
//!     let byte = a.int(0)? as u8;
//!     let out = a.out().ok_or("no output buffer")?;
//!     out.fill(byte);
//!     Ok(out.len() as i64)
//! });
//! let mut out = [0u8; 4];
//! let mut args = FnArgs::new(vec![FnArg::Int(b'x' as i64)], Some(&mut out));
//! assert_eq!(f.get("fill").unwrap().call(&mut args), Ok(4));
//! assert_eq!(&out, b"xxxx");
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use cosy_model::BUILTINS;

/// What a function returns: its result, or a message saying why it failed.
pub type FnResult = Result<i64, String>;

type DynFn = dyn Fn(&mut FnArgs<'_>) -> FnResult + Send + Sync + 'static;

/// One operand of a function call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FnArg<'a> {
    /// An integer operand (a value; a descriptor operand is given as its raw number).
    Int(i64),
    /// A buffer range or a data constant.
    Bytes(&'a [u8]),
}

/// The operands of one function call.
#[derive(Debug)]
pub struct FnArgs<'a> {
    args: Vec<FnArg<'a>>,
    out: Option<&'a mut [u8]>,
}

impl<'a> FnArgs<'a> {
    /// Operands `args`, and the writable range of a function registered with
    /// [`Functions::register_mut`].
    pub fn new(args: Vec<FnArg<'a>>, out: Option<&'a mut [u8]>) -> Self {
        FnArgs { args, out }
    }

    /// The operands in order (without the writable range).
    pub fn args(&self) -> &[FnArg<'a>] {
        &self.args
    }

    /// Number of operands (without the writable range).
    pub fn len(&self) -> usize {
        self.args.len()
    }

    /// Whether there are no operands.
    pub fn is_empty(&self) -> bool {
        self.args.is_empty()
    }

    /// Operand `i` as an integer.
    pub fn int(&self, i: usize) -> Result<i64, String> {
        match self.args.get(i) {
            Some(FnArg::Int(v)) => Ok(*v),
            Some(FnArg::Bytes(_)) => Err(format!("operand {i} is bytes, not an integer")),
            None => Err(format!("no operand {i}")),
        }
    }

    /// Operand `i` as bytes.
    pub fn bytes(&self, i: usize) -> Result<&'a [u8], String> {
        match self.args.get(i) {
            Some(FnArg::Bytes(b)) => Ok(b),
            Some(FnArg::Int(_)) => Err(format!("operand {i} is an integer, not bytes")),
            None => Err(format!("no operand {i}")),
        }
    }

    /// The integer operands, in order.
    pub fn ints(&self) -> Vec<i64> {
        self.args
            .iter()
            .filter_map(|a| match a {
                FnArg::Int(v) => Some(*v),
                FnArg::Bytes(_) => None,
            })
            .collect()
    }

    /// The byte operands, in order.
    pub fn bufs(&self) -> Vec<&'a [u8]> {
        self.args
            .iter()
            .filter_map(|a| match a {
                FnArg::Bytes(b) => Some(*b),
                FnArg::Int(_) => None,
            })
            .collect()
    }

    /// The writable range (functions registered with [`Functions::register_mut`]).
    pub fn out(&mut self) -> Option<&mut [u8]> {
        self.out.as_deref_mut()
    }

    /// Fails unless there are exactly `n` operands.
    pub fn arity(&self, n: usize) -> Result<(), String> {
        if self.args.len() == n {
            Ok(())
        } else {
            Err(format!("takes {n} operand(s), got {}", self.args.len()))
        }
    }
}

/// A callable function: a built-in or a registered closure.
#[derive(Clone)]
pub struct Function {
    f: Arc<DynFn>,
    mutable: bool,
}

impl Function {
    /// Whether the function receives its last buffer operand writable.
    pub fn is_mut(&self) -> bool {
        self.mutable
    }

    /// Calls the function.
    pub fn call(&self, args: &mut FnArgs<'_>) -> FnResult {
        (self.f)(args)
    }
}

impl fmt::Debug for Function {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Function")
            .field("mutable", &self.mutable)
            .finish_non_exhaustive()
    }
}

/// The functions a run can call: the built-ins and those registered by name. Cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Functions {
    user: BTreeMap<String, Function>,
}

impl Functions {
    /// The built-ins only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `f` as `name`; its operands are read-only. Replaces an earlier registration.
    ///
    /// # Panics
    ///
    /// If `name` is a built-in (`find`, `count_lines`, `checksum`): built-ins mean the same in
    /// every executor and cannot be replaced.
    pub fn register(
        &mut self,
        name: impl Into<String>,
        f: impl Fn(&FnArgs<'_>) -> FnResult + Send + Sync + 'static,
    ) -> &mut Self {
        self.insert(name.into(), Arc::new(move |a: &mut FnArgs<'_>| f(a)), false)
    }

    /// Registers `f` as `name`; it receives the last buffer-range operand writable as
    /// [`FnArgs::out`]. That range must not overlap another range operand of the call (the
    /// run stops with `Error::Function` if it does).
    ///
    /// # Panics
    ///
    /// If `name` is a built-in.
    pub fn register_mut(
        &mut self,
        name: impl Into<String>,
        f: impl Fn(&mut FnArgs<'_>) -> FnResult + Send + Sync + 'static,
    ) -> &mut Self {
        self.insert(name.into(), Arc::new(f), true)
    }

    fn insert(&mut self, name: String, f: Arc<DynFn>, mutable: bool) -> &mut Self {
        assert!(
            !BUILTINS.contains(&name.as_str()),
            "`{name}` is a built-in function and cannot be registered"
        );
        self.user.insert(name, Function { f, mutable });
        self
    }

    /// The function `name`: a built-in or a registered one.
    pub fn get(&self, name: &str) -> Option<Function> {
        builtin(name).or_else(|| self.user.get(name).cloned())
    }

    /// Whether `name` can be called.
    pub fn contains(&self, name: &str) -> bool {
        BUILTINS.contains(&name) || self.user.contains_key(name)
    }

    /// The names of the registered (non-built-in) functions.
    pub fn registered(&self) -> impl Iterator<Item = &str> {
        self.user.keys().map(String::as_str)
    }
}

fn builtin(name: &str) -> Option<Function> {
    let f: fn(&mut FnArgs<'_>) -> FnResult = match name {
        "find" => find,
        "count_lines" => count_lines,
        "checksum" => checksum,
        _ => return None,
    };
    Some(Function {
        f: Arc::new(f),
        mutable: false,
    })
}

/// `find(hay, needle)`: non-overlapping occurrences of a non-empty needle.
fn find(a: &mut FnArgs<'_>) -> FnResult {
    a.arity(2)?;
    let (hay, needle) = (a.bytes(0)?, a.bytes(1)?);
    if needle.is_empty() {
        return Err("empty needle".into());
    }
    Ok(memchr::memmem::find_iter(hay, needle).count() as i64)
}

/// `count_lines(range)`: the number of `\n` bytes.
fn count_lines(a: &mut FnArgs<'_>) -> FnResult {
    a.arity(1)?;
    Ok(memchr::memchr_iter(b'\n', a.bytes(0)?).count() as i64)
}

/// `checksum(range)`: FNV-1a 64 of the bytes, as the `i64` with the same bits.
fn checksum(a: &mut FnArgs<'_>) -> FnResult {
    a.arity(1)?;
    Ok(fnv1a64(a.bytes(0)?) as i64)
}

/// FNV-1a, 64 bits.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn call(name: &str, args: Vec<FnArg<'_>>) -> FnResult {
        Functions::new()
            .get(name)
            .ok_or("missing")?
            .call(&mut FnArgs::new(args, None))
    }

    #[test]
    fn builtins() {
        let b = FnArg::Bytes;
        assert_eq!(call("find", vec![b(b"aaaa"), b(b"aa")]), Ok(2));
        assert_eq!(call("find", vec![b(b"abcab"), b(b"ab")]), Ok(2));
        assert!(call("find", vec![b(b"abc"), b(b"")]).is_err());
        assert!(call("find", vec![b(b"abc")]).is_err());
        assert!(call("find", vec![b(b"abc"), FnArg::Int(1)]).is_err());
        assert_eq!(call("count_lines", vec![b(b"a\nb\n\n")]), Ok(3));
        // Reference values of FNV-1a 64.
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(
            call("checksum", vec![b(b"foobar")]),
            Ok(0x85944171f73967e8u64 as i64)
        );
    }

    #[test]
    #[should_panic(expected = "built-in")]
    fn builtins_cannot_be_replaced() {
        Functions::new().register("find", |_| Ok(0));
    }

    #[test]
    fn registered_functions_are_found() {
        let mut f = Functions::new();
        f.register("two", |_| Ok(2));
        assert!(f.contains("two") && f.contains("checksum") && !f.contains("three"));
        assert_eq!(f.registered().collect::<Vec<_>>(), ["two"]);
        assert!(!f.get("two").unwrap().is_mut());
    }

    proptest! {
        #[test]
        fn find_counts_like_str_matches(hay in "[ab]{0,40}", needle in "[ab]{1,3}") {
            let expect = hay.matches(needle.as_str()).count() as i64;
            prop_assert_eq!(call("find", vec![FnArg::Bytes(hay.as_bytes()), FnArg::Bytes(needle.as_bytes())]), Ok(expect));
        }
    }
}
