//! Lowering: the Rust subset to lines of cosy's text format, each with the span it came from.
//!
//! Every function returns `syn::Result`: anything outside the subset is an error at the span
//! of the construct, naming it and saying what to write instead.

use std::collections::{BTreeSet, HashMap};

use cosy_model::{ArgKind, RetKind, Sys};
use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{
    BinOp, Block, Expr, ExprCall, ExprForLoop, ExprIf, ExprLoop, ExprMatch, ExprWhile, Lit, Pat,
    Stmt, UnOp,
};

/// Where a line came from: the first and the last token of its Rust (an error spans both,
/// on stable Rust too, where spans do not join).
#[derive(Clone, Copy)]
pub struct Loc {
    /// The first token's span.
    pub start: Span,
    /// The last token's span.
    pub end: Span,
}

impl From<Span> for Loc {
    fn from(s: Span) -> Self {
        Loc { start: s, end: s }
    }
}

impl Loc {
    /// An error from `start` to `end`.
    pub fn error(self, msg: impl std::fmt::Display) -> syn::Error {
        let mut ts = quote::quote_spanned!(self.start=> __start);
        ts.extend(quote::quote_spanned!(self.end=> __end));
        syn::Error::new_spanned(ts, msg)
    }
}

/// The first and the last token of `t`.
pub fn loc<T: quote::ToTokens + ?Sized>(t: &T) -> Loc {
    let mut it = t.to_token_stream().into_iter();
    let start = it.next().map(|t| t.span()).unwrap_or_else(Span::call_site);
    let end = it.last().map(|t| t.span()).unwrap_or(start);
    Loc { start, end }
}

/// The head of a `for`: from `for` to the end of what it iterates over.
fn for_head(f: &ExprForLoop) -> Loc {
    Loc {
        start: f.for_token.span,
        end: loc(&f.expr).end,
    }
}

/// A compound as text, with the span of every line.
pub struct Lowered {
    /// Declarations (`mode`, `input`, `buffer`), then operations and labels, then outputs.
    pub lines: Vec<(String, Loc)>,
    /// The user functions the body calls.
    pub functions: BTreeSet<String>,
}

/// What a Rust name stands for in the compound.
#[derive(Clone, Debug)]
enum Ent {
    /// A register (the text name).
    Reg(String),
    /// An fd slot.
    Fd(String),
    /// A buffer.
    Buf(String),
    /// A path variable bound by a `paths` map.
    PathVar(String),
    /// A path input (`$name`).
    PathInput(String),
    /// A directory entry bound by a `dirents` map: its name is the path variable, its
    /// `kind` and `ino` the registers `NAME.type` and `NAME.ino`.
    Dirent(String),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Stop,
    Continue,
}

/// A loop or map being lowered, for `break` and `continue`.
enum Ctx {
    Loop { latch: String, end: String },
    Map { next: String },
}

/// An integer operand: an immediate or a register.
#[derive(Clone, Debug)]
enum Val {
    Imm(i64),
    Reg(String),
}

impl Val {
    fn text(&self) -> String {
        match self {
            Val::Imm(v) => v.to_string(),
            Val::Reg(r) => r.clone(),
        }
    }
}

/// Where a call's result goes.
enum Dest {
    None,
    Reg(String),
    Fd(String),
}

fn err<T>(span: Span, msg: impl std::fmt::Display) -> syn::Result<T> {
    Err(syn::Error::new(span, msg))
}

fn err_at<T: quote::ToTokens + ?Sized, R>(t: &T, msg: impl std::fmt::Display) -> syn::Result<R> {
    Err(loc(t).error(msg))
}

/// The lowering of one function body.
pub struct Lower {
    decls: Vec<(String, Loc)>,
    body: Vec<(String, Loc)>,
    scopes: Vec<HashMap<String, Ent>>,
    /// Text names taken by registers, fd slots, path variables, buffers (one namespace here,
    /// stricter than cosy's, so a Rust name maps to one thing).
    taken: HashMap<String, u32>,
    ctx: Vec<Ctx>,
    map_depth: usize,
    mode: Option<(Mode, Span)>,
    declared_functions: BTreeSet<String>,
    called_functions: BTreeSet<String>,
    tmp: u32,
    label: u32,
}

const BUILTINS: &[&str] = cosy_model::BUILTINS;

impl Lower {
    /// A lowering with the user functions `functions` declared.
    pub fn new(functions: BTreeSet<String>) -> Self {
        Lower {
            decls: Vec::new(),
            body: Vec::new(),
            scopes: vec![HashMap::new()],
            taken: HashMap::new(),
            ctx: Vec::new(),
            map_depth: 0,
            mode: None,
            declared_functions: functions,
            called_functions: BTreeSet::new(),
            tmp: 0,
            label: 0,
        }
    }

    /// Declares a path input `name` with default `default`.
    pub fn input_path(&mut self, name: &str, default: &[u8], span: Span) -> syn::Result<()> {
        self.claim(name, span)?;
        self.decls.push((
            format!("input path {name} = {}", quote_bytes(default)),
            span.into(),
        ));
        self.bind(name, Ent::PathInput(name.to_string()));
        Ok(())
    }

    /// Declares an integer input `name` with default `default`.
    pub fn input_int(&mut self, name: &str, default: i64, span: Span) -> syn::Result<()> {
        self.claim(name, span)?;
        self.decls
            .push((format!("input int {name} = {default}"), span.into()));
        self.bind(name, Ent::Reg(name.to_string()));
        Ok(())
    }

    /// Lowers the body; its tail expression (a struct expression) gives the outputs, returned
    /// as `(field, span)`.
    pub fn body(mut self, block: &Block, out_name: &str) -> syn::Result<(Lowered, Vec<String>)> {
        let (stmts, tail) = match block.stmts.split_last() {
            Some((Stmt::Expr(e, None), rest)) => (rest, Some(e)),
            _ => (&block.stmts[..], None),
        };
        for s in stmts {
            self.stmt(s)?;
        }
        let mut outputs = Vec::new();
        let mut out_lines = Vec::new();
        match tail {
            Some(Expr::Struct(s)) => {
                if !s.path.is_ident(out_name) {
                    return err_at(
                        &s.path,
                        format!(
                            "the outputs are the struct `{out_name}` the function returns: write `{out_name} {{ .. }}`"
                        ),
                    );
                }
                if let Some(r) = &s.rest {
                    return err_at(&r, "`..` in the outputs: name each output");
                }
                for f in &s.fields {
                    let syn::Member::Named(field) = &f.member else {
                        return err_at(&f, "outputs are named fields");
                    };
                    let name = field.to_string();
                    if name == "stats" || name == "errors" {
                        return err_at(
                            &field,
                            format!(
                                "an output cannot be named `{name}`: the outputs struct has a field `{name}` of its own"
                            ),
                        );
                    }
                    let reg = match &f.expr {
                        Expr::Path(p) if p.path.get_ident().is_some() => {
                            let id = p
                                .path
                                .get_ident()
                                .map(|i| i.to_string())
                                .unwrap_or_default();
                            match self.lookup(&id) {
                                Some(Ent::Reg(r)) => r,
                                Some(_) => {
                                    return err_at(
                                        &p,
                                        format!(
                                            "the output `{name}` is not an integer: `{id}` is not a register"
                                        ),
                                    );
                                }
                                None => {
                                    return err_at(
                                        &p,
                                        format!(
                                            "cannot find `{id}` in the compound: outputs name its integer variables"
                                        ),
                                    );
                                }
                            }
                        }
                        e => {
                            let dst = self.fresh_reg(&name, e.span())?;
                            self.assign(&dst, e)?;
                            dst
                        }
                    };
                    let line = if reg == name {
                        format!("output {name}")
                    } else {
                        format!("output {name} = {reg}")
                    };
                    out_lines.push((line, loc(f)));
                    outputs.push(name);
                }
            }
            Some(e) => {
                return err_at(
                    &e,
                    format!(
                        "the body must end with its outputs: `{out_name} {{ name, other: expression }}`"
                    ),
                );
            }
            None => {
                return err_at(
                    &block,
                    format!(
                        "the body must end with its outputs, `{out_name} {{ .. }}` (no semicolon)"
                    ),
                );
            }
        }
        let mut lines = Vec::new();
        if let Some((Mode::Continue, span)) = self.mode {
            lines.push(("mode continue".to_string(), span.into()));
        }
        lines.extend(self.decls);
        lines.extend(self.body);
        lines.extend(out_lines);
        Ok((
            Lowered {
                lines,
                functions: self.called_functions,
            },
            outputs,
        ))
    }

    // ---- names ----

    fn lookup(&self, name: &str) -> Option<Ent> {
        self.scopes.iter().rev().find_map(|s| s.get(name)).cloned()
    }

    fn bind(&mut self, name: &str, e: Ent) {
        if let Some(s) = self.scopes.last_mut() {
            s.insert(name.to_string(), e);
        }
    }

    /// Reserves text name `name`, refusing names the text format cannot give a register.
    fn claim(&mut self, name: &str, span: Span) -> syn::Result<()> {
        let ascii = name
            .bytes()
            .enumerate()
            .all(|(i, b)| b == b'_' || b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()));
        if !ascii {
            return err(
                span,
                format!(
                    "`{name}` cannot name a value of a compound: its names are ASCII letters, digits and `_` (no raw identifiers)"
                ),
            );
        }
        if Sys::from_name(name).is_some()
            || ["load", "call", "cwd", "stdin", "stdout", "stderr"].contains(&name)
            || cosy_model::flags::constant(name).is_some()
        {
            return err(
                span,
                format!(
                    "`{name}` is a system call, keyword or constant of cosy's text format: rename the variable"
                ),
            );
        }
        self.taken.entry(name.to_string()).or_insert(0);
        Ok(())
    }

    /// A text name for a new Rust binding `name`: `name` itself the first time, then
    /// `name_1`, `name_2`...: every `let` (shadowing included) has storage of its own, as in
    /// Rust.
    fn fresh_name(&mut self, name: &str, span: Span) -> syn::Result<String> {
        if !self.taken.contains_key(name) {
            self.claim(name, span)?;
            return Ok(name.to_string());
        }
        let mut k = self.taken.get(name).copied().unwrap_or(0);
        loop {
            k += 1;
            let cand = format!("{name}_{k}");
            if !self.taken.contains_key(&cand) {
                self.taken.insert(name.to_string(), k);
                self.taken.insert(cand.clone(), 0);
                return Ok(cand);
            }
        }
    }

    fn fresh_reg(&mut self, name: &str, span: Span) -> syn::Result<String> {
        let r = self.fresh_name(name, span)?;
        self.bind(name, Ent::Reg(r.clone()));
        Ok(r)
    }

    fn tmp(&mut self) -> String {
        self.tmp += 1;
        format!("tmp.{}", self.tmp)
    }

    fn new_label(&mut self, what: &str) -> String {
        self.label += 1;
        format!("{what}_{}", self.label)
    }

    fn emit(&mut self, line: String, at: impl Into<Loc>) {
        self.body.push((line, at.into()));
    }

    fn place(&mut self, label: &str, at: impl Into<Loc>) {
        self.body.push((format!("{label}:"), at.into()));
    }

    // ---- statements ----

    fn block(&mut self, b: &Block) -> syn::Result<()> {
        self.scopes.push(HashMap::new());
        let r = b.stmts.iter().try_for_each(|s| self.stmt(s));
        self.scopes.pop();
        r
    }

    fn stmt(&mut self, s: &Stmt) -> syn::Result<()> {
        match s {
            Stmt::Local(l) => self.local(l),
            Stmt::Expr(e, _) => self.expr_stmt(e),
            Stmt::Item(i) => err_at(
                &i,
                "items (fn, struct, use, const...) cannot be declared inside `compound!`: declare them outside it",
            ),
            Stmt::Macro(m) => err_at(
                &m,
                "macro calls cannot be compiled into a compound: write the operations they stand for",
            ),
        }
    }

    fn local(&mut self, l: &syn::Local) -> syn::Result<()> {
        let (name, span) = match &l.pat {
            Pat::Ident(p) if p.subpat.is_none() && p.by_ref.is_none() => {
                (p.ident.to_string(), p.ident.span())
            }
            Pat::Type(t) => {
                return err_at(
                    &t.ty,
                    "no type annotations in `compound!`: every value is an i64, descriptors and buffers are known by how they are made",
                );
            }
            p => {
                return err_at(
                    &p,
                    "only `let NAME = ...;` bindings: patterns (tuples, structs) are not supported",
                );
            }
        };
        if let Some(d) = &l.init
            && let Some((_, e)) = &d.diverge
        {
            return err_at(&e, "`let ... else` is not supported: use `if`");
        }
        let Some(init) = &l.init else {
            // `let x;`: a register written later.
            self.fresh_reg(&name, span)?;
            return Ok(());
        };
        let e = &*init.expr;
        // A buffer: `[0u8; N]`.
        if let Expr::Repeat(r) = e {
            let size = self.buffer_size(r)?;
            let text = self.fresh_name(&name, span)?;
            let local = if self.map_depth > 0 { " local" } else { "" };
            self.decls
                .push((format!("buffer {text} {size}{local}"), loc(l)));
            self.bind(&name, Ent::Buf(text));
            return Ok(());
        }
        if let Expr::Array(a) = e {
            return err_at(
                &a,
                "a buffer is declared as `[0u8; SIZE]`; a list of paths or offsets is written in the `for` it drives",
            );
        }
        if let Expr::Closure(c) = e {
            return self.closure_error(loc(c));
        }
        if self.returns_fd(e) {
            let text = self.fresh_name(&name, span)?;
            self.bind(&name, Ent::Fd(text.clone()));
            return self.call_into(Dest::Fd(text), e);
        }
        if let Some(Ent::PathInput(_) | Ent::PathVar(_) | Ent::Dirent(_) | Ent::Buf(_)) =
            path_ident(e).and_then(|id| self.lookup(&id))
        {
            return err_at(
                &e,
                "paths, directory entries and buffers cannot be copied into a new name: use the original",
            );
        }
        // Evaluate before binding: `let x = x + 1` reads the old `x`.
        let v = self.value_or_into(e)?;
        let text = self.fresh_name(&name, span)?;
        match v {
            Some(v) => self.emit(format!("{text} = {}", v.text()), loc(l)),
            None => self.assign(&text, e)?,
        }
        self.bind(&name, Ent::Reg(text));
        Ok(())
    }

    /// `Some(value)` for operands that are cheap (immediates, registers), `None` when the
    /// expression should be lowered straight into its destination (arithmetic, calls...).
    fn value_or_into(&mut self, e: &Expr) -> syn::Result<Option<Val>> {
        match strip(e) {
            Expr::Lit(_) | Expr::Path(_) | Expr::Field(_) => self.value(e).map(Some),
            Expr::Unary(_) | Expr::Binary(_) | Expr::Cast(_) => match self.const_eval(e) {
                Some(v) => Ok(Some(Val::Imm(v))),
                None => Ok(None),
            },
            _ => Ok(None),
        }
    }

    fn closure_error<T>(&self, at: Loc) -> syn::Result<T> {
        Err(at.error(
            "a closure cannot be compiled into a compound (what it captures lives in the Rust program, not in the compound): declare it as a user function with `#[functions(NAME)]` on the compound's fn, call `NAME(...)` here, and register the closure with `RunOptions::functions.register(\"NAME\", ...)`",
        ))
    }

    fn buffer_size(&self, r: &syn::ExprRepeat) -> syn::Result<u32> {
        match &*r.expr {
            Expr::Lit(l) if matches!(&l.lit, Lit::Int(i) if i.base10_digits() == "0" && matches!(i.suffix(), "" | "u8")) =>
                {}
            e => {
                return err_at(&e, "a buffer starts zeroed: write `[0u8; SIZE]`");
            }
        }
        let Some(size) = self.const_eval(&r.len) else {
            return err_at(
                &r.len,
                "a buffer's size must be a constant (a literal, a cosy constant such as STATX_BYTES, or arithmetic on them)",
            );
        };
        match u32::try_from(size) {
            Ok(s) if s > 0 => Ok(s),
            _ => err_at(
                &r.len,
                format!(
                    "a buffer's size is between 1 and {} bytes, not {size}",
                    u32::MAX
                ),
            ),
        }
    }

    fn expr_stmt(&mut self, e: &Expr) -> syn::Result<()> {
        match e {
            Expr::Assign(a) => {
                let name = path_ident(&a.left).ok_or_else(|| {
                    syn::Error::new(
                        a.left.span(),
                        "only variables can be assigned to (`x = ...`)",
                    )
                })?;
                match self.lookup(&name) {
                    Some(Ent::Reg(r)) => {
                        self.assign(&r, &a.right)?;
                        // The line that writes `r` is the assignment's (a verifier problem
                        // with the write points at `r = ...`), unless it is a call's.
                        if !matches!(strip(&a.right), Expr::Call(_) | Expr::Try(_))
                            && let Some(last) = self.body.last_mut()
                        {
                            last.1 = loc(a);
                        }
                        Ok(())
                    }
                    Some(Ent::Fd(f)) => {
                        if !self.returns_fd(&a.right) {
                            return err_at(
                                &a.right,
                                format!(
                                    "`{name}` is a descriptor: only an open (`openat(...)?`) can be assigned to it"
                                ),
                            );
                        }
                        self.call_into(Dest::Fd(f), &a.right)
                    }
                    Some(_) => err_at(
                        &a.left,
                        format!("`{name}` is not an integer variable: it cannot be assigned to"),
                    ),
                    None => err_at(
                        &a.left,
                        format!("cannot find `{name}` in the compound: declare it with `let`"),
                    ),
                }
            }
            Expr::Binary(b) if compound_assign(&b.op).is_some() => {
                let op = compound_assign(&b.op).unwrap_or("+");
                let name = path_ident(&b.left).ok_or_else(|| {
                    syn::Error::new(
                        b.left.span(),
                        "only variables can be assigned to (`x += ...`)",
                    )
                })?;
                let Some(Ent::Reg(r)) = self.lookup(&name) else {
                    return err_at(
                        &b.left,
                        format!("`{name}` is not an integer variable of the compound"),
                    );
                };
                let v = self.value(&b.right)?;
                self.emit(format!("{r} = {r} {op} {}", v.text()), loc(e));
                Ok(())
            }
            Expr::If(i) => self.if_stmt(i),
            Expr::Loop(l) => self.loop_stmt(l),
            Expr::While(w) => self.while_stmt(w),
            Expr::ForLoop(f) => self.for_stmt(f),
            Expr::Match(m) => self.match_into(None, m),
            Expr::Block(b) if b.label.is_none() => self.block(&b.block),
            Expr::Break(b) => {
                if b.expr.is_some() || b.label.is_some() {
                    return err_at(&b, "`break` with a label or a value is not supported");
                }
                let target = self.break_target(b.span())?;
                self.emit(format!("goto {target}"), loc(b));
                Ok(())
            }
            Expr::Continue(c) => {
                if c.label.is_some() {
                    return err_at(&c, "`continue` with a label is not supported");
                }
                let target = self.continue_target(c.span())?;
                self.emit(format!("goto {target}"), loc(c));
                Ok(())
            }
            Expr::Try(_) | Expr::Call(_) => self.call_into(Dest::None, e),
            Expr::Paren(p) => self.expr_stmt(&p.expr),
            other => {
                // Anything else as a statement: an error unless it is a pure value.
                self.unsupported(other)
            }
        }
    }

    fn break_target(&self, span: Span) -> syn::Result<String> {
        match self.ctx.last() {
            Some(Ctx::Loop { end, .. }) => Ok(end.clone()),
            Some(Ctx::Map { .. }) => err(
                span,
                "`break` in a `for`: a `for` is a cosy map, whose iterations are independent and all run; skip one with `continue`, or use `loop` with a bound",
            ),
            None => err(span, "`break` outside a loop"),
        }
    }

    fn continue_target(&self, span: Span) -> syn::Result<String> {
        match self.ctx.last() {
            Some(Ctx::Loop { latch, .. }) => Ok(latch.clone()),
            Some(Ctx::Map { next }) => Ok(next.clone()),
            None => err(span, "`continue` outside a loop"),
        }
    }

    fn if_stmt(&mut self, i: &ExprIf) -> syn::Result<()> {
        // `if c { break; }` / `if c { continue; }`: one conditional jump.
        if i.else_branch.is_none()
            && let Some(jump) = lone_jump(&i.then_branch)
        {
            let target = match jump {
                Jump::Break(span) => self.break_target(span)?,
                Jump::Continue(span) => self.continue_target(span)?,
            };
            return self.jump_if(&i.cond, true, &target, None);
        }
        let else_l = self.new_label("else");
        self.jump_if(&i.cond, false, &else_l, None)?;
        self.block(&i.then_branch)?;
        match &i.else_branch {
            None => self.place(&else_l, i.span()),
            Some((_, e)) => {
                let end = self.new_label("endif");
                self.emit(format!("goto {end}"), loc(i));
                self.place(&else_l, e.span());
                match &**e {
                    Expr::If(i2) => self.if_stmt(i2)?,
                    Expr::Block(b) => self.block(&b.block)?,
                    other => return self.unsupported(other),
                }
                self.place(&end, i.span());
            }
        }
        Ok(())
    }

    /// The `#[bound(N)]` among `attrs`, if any; any other attribute is an error.
    fn bound(&self, attrs: &[syn::Attribute], what: &str) -> syn::Result<Option<u64>> {
        let mut bound = None;
        for a in attrs {
            if !a.path().is_ident("bound") || bound.is_some() {
                return err_at(
                    &a,
                    format!("unknown attribute on a {what}: the only one is `#[bound(N)]`, once"),
                );
            }
            let lit: syn::LitInt = a.parse_args().map_err(|_| {
                syn::Error::new(
                    a.span(),
                    "write the bound as `#[bound(N)]`, N an integer literal",
                )
            })?;
            let n: u64 = lit.base10_parse()?;
            if n == 0 || n > u64::from(u32::MAX) {
                return err_at(&lit, format!("a bound is between 1 and {}", u32::MAX));
            }
            bound = Some(n);
        }
        Ok(bound)
    }

    fn loop_stmt(&mut self, l: &ExprLoop) -> syn::Result<()> {
        if let Some(label) = &l.label {
            return err_at(
                &label.name,
                "loop labels are not supported: `break` leaves the innermost loop; to leave an outer one, set a variable and test it after the inner loop",
            );
        }
        let Some(bound) = self.bound(&l.attrs, "loop")? else {
            return err(
                l.loop_token.span,
                "this loop has no bound: cosy runs only loops with a bound the verifier can check; write `#[bound(N)] loop { .. }` (N: the most times it goes round)",
            );
        };
        let top = self.new_label("loop");
        let latch = self.new_label("next");
        let end = self.new_label("end");
        self.place(&top, l.span());
        // `loop { ..; if c { break; } }` without `continue`: a do-while, one backward jump.
        let stmts = &l.body.stmts;
        if let Some((Stmt::Expr(Expr::If(last), _), rest)) = stmts.split_last()
            && last.else_branch.is_none()
            && matches!(lone_jump(&last.then_branch), Some(Jump::Break(_)))
            && !has_continue(&l.body)
        {
            self.ctx.push(Ctx::Loop {
                latch,
                end: end.clone(),
            });
            self.scopes.push(HashMap::new());
            let r = rest.iter().try_for_each(|s| self.stmt(s));
            let r = r.and_then(|_| self.jump_if(&last.cond, false, &top, Some(bound)));
            self.scopes.pop();
            self.ctx.pop();
            r?;
            self.place(&end, l.span());
            return Ok(());
        }
        self.ctx.push(Ctx::Loop {
            latch: latch.clone(),
            end: end.clone(),
        });
        let r = self.block(&l.body);
        self.ctx.pop();
        r?;
        self.place(&latch, l.span());
        self.emit(format!("goto {top} bound {bound}"), l.loop_token.span);
        self.place(&end, l.span());
        Ok(())
    }

    fn while_stmt(&mut self, w: &ExprWhile) -> syn::Result<()> {
        if let Some(label) = &w.label {
            return err_at(
                &label.name,
                "loop labels are not supported: `break` leaves the innermost loop; to leave an outer one, set a variable and test it after the inner loop",
            );
        }
        if let Expr::Let(l) = &*w.cond {
            return err_at(
                &l,
                "`while let` is not supported: use `loop` with `if` and `break`",
            );
        }
        let Some(bound) = self.bound(&w.attrs, "while loop")? else {
            return err(
                w.while_token.span,
                "this loop has no bound: cosy runs only loops with a bound the verifier can check; write `#[bound(N)] while .. { .. }` (N: the most times it goes round), or iterate over a range with `for`",
            );
        };
        let top = self.new_label("while");
        let latch = self.new_label("next");
        let end = self.new_label("end");
        self.place(&top, w.span());
        self.jump_if(&w.cond, false, &end, None)?;
        self.ctx.push(Ctx::Loop {
            latch: latch.clone(),
            end: end.clone(),
        });
        let r = self.block(&w.body);
        self.ctx.pop();
        r?;
        self.place(&latch, w.span());
        self.emit(format!("goto {top} bound {bound}"), w.while_token.span);
        self.place(&end, w.span());
        Ok(())
    }

    fn for_stmt(&mut self, f: &ExprForLoop) -> syn::Result<()> {
        if let Some(label) = &f.label {
            return err_at(
                &label.name,
                "loop labels are not supported: `break` leaves the innermost loop; to leave an outer one, set a variable and test it after the inner loop",
            );
        }
        let Pat::Ident(p) = &*f.pat else {
            return err_at(&f.pat, "a `for` binds one name (`for x in ...`)");
        };
        let var = p.ident.to_string();
        let vspan = p.ident.span();
        let bound = self.bound(&f.attrs, "for loop")?;
        let src = strip(&f.expr);
        // for e in dirents(dir[, &mut buf])
        if let Expr::Call(c) = src
            && path_ident(&c.func).as_deref() == Some("dirents")
        {
            return self.for_dirents(f, c, &var, vspan, bound);
        }
        if bound.is_some() {
            return err(
                f.attrs[0].span(),
                "a `for` over a range or a list needs no bound: it is a cosy map, bounded by what it iterates over",
            );
        }
        // The head: `range(a, b, s)`, `paths(...)`, `offsets(...)`, with a register or a path
        // variable bound.
        enum Head {
            Reg,
            Path,
        }
        let (source, head) = match src {
            Expr::Range(r) => (self.range_source(r, None, f.expr.span())?, Head::Reg),
            Expr::MethodCall(m) if m.method == "step_by" => {
                let Expr::Range(r) = strip(&m.receiver) else {
                    return err_at(
                        &m.receiver,
                        "`step_by` is supported on a range: `(a..b).step_by(n)`",
                    );
                };
                if m.args.len() != 1 {
                    return err_at(&m, "`step_by` takes one step");
                }
                let step = self.value(&m.args[0])?;
                (self.range_source(r, Some(step), f.expr.span())?, Head::Reg)
            }
            Expr::Array(_) | Expr::Reference(_) => {
                let items = match src {
                    Expr::Array(a) => &a.elems,
                    Expr::Reference(r) => match strip(&r.expr) {
                        Expr::Array(a) => &a.elems,
                        e => {
                            return err_at(
                                &e,
                                "a `for` iterates over a literal list: `[\"a\", \"b\"]` or `[0, 4096]`",
                            );
                        }
                    },
                    e => return self.unsupported(e),
                };
                let mut paths = Vec::new();
                let mut ints = Vec::new();
                for it in items {
                    if let Expr::Lit(l) = it
                        && let Lit::Str(s) = &l.lit
                    {
                        paths.push(quote_bytes(s.value().as_bytes()));
                    } else if let Some(id) = path_ident(it)
                        && let Some(Ent::PathInput(n)) = self.lookup(&id)
                    {
                        paths.push(format!("${n}"));
                    } else if let Some(v) = self.const_eval(it) {
                        ints.push(v.to_string());
                    } else {
                        return err_at(
                            &it,
                            "a list to iterate over holds path literals and path inputs (a `paths` map) or integer constants (an `offsets` map)",
                        );
                    }
                }
                if !paths.is_empty() && !ints.is_empty() {
                    return err_at(&src, "a list holds paths or integers, not both");
                }
                if paths.is_empty() {
                    (format!("offsets({})", ints.join(", ")), Head::Reg)
                } else {
                    (format!("paths({})", paths.join(", ")), Head::Path)
                }
            }
            e => {
                return err_at(
                    &e,
                    "a `for` iterates over `dirents(dir)`, a range `a..b` or `(a..b).step_by(n)`, or a literal list of paths or offsets",
                );
            }
        };
        self.scopes.push(HashMap::new());
        let name = self.fresh_name(&var, vspan)?;
        match head {
            Head::Reg => self.bind(&var, Ent::Reg(name.clone())),
            Head::Path => self.bind(&var, Ent::PathVar(name.clone())),
        }
        self.emit(format!("map {name} in {source} {{"), for_head(f));
        let r = self.map_body(&f.body);
        self.scopes.pop();
        r?;
        self.emit("}".to_string(), for_head(f));
        Ok(())
    }

    fn map_body(&mut self, body: &Block) -> syn::Result<()> {
        let next = self.new_label("item");
        self.ctx.push(Ctx::Map { next: next.clone() });
        self.map_depth += 1;
        let r = self.block(body);
        self.map_depth -= 1;
        self.ctx.pop();
        r?;
        self.place(&next, body.span());
        Ok(())
    }

    fn range_source(
        &mut self,
        r: &syn::ExprRange,
        step: Option<Val>,
        span: Span,
    ) -> syn::Result<String> {
        let (Some(a), Some(b)) = (&r.start, &r.end) else {
            return err(span, "a range to iterate over has both ends: `a..b`");
        };
        let a = self.value(a)?;
        let mut b = self.value(b)?;
        if matches!(r.limits, syn::RangeLimits::Closed(_)) {
            b = match b {
                Val::Imm(v) => Val::Imm(v.wrapping_add(1)),
                Val::Reg(reg) => {
                    let t = self.tmp();
                    self.emit(format!("{t} = {reg} + 1"), span);
                    Val::Reg(t)
                }
            };
        }
        let s = step.unwrap_or(Val::Imm(1));
        Ok(format!("range({}, {}, {})", a.text(), b.text(), s.text()))
    }

    fn for_dirents(
        &mut self,
        f: &ExprForLoop,
        c: &ExprCall,
        var: &str,
        vspan: Span,
        bound: Option<u64>,
    ) -> syn::Result<()> {
        if c.args.is_empty() || c.args.len() > 2 {
            return err_at(
                &c,
                "`dirents(dir)` or `dirents(dir, &mut buf)`: the entries of the open directory `dir`, read with getdents64 into `buf` (64 KiB if not given); or `dirents(&buf[..n])`: the entries getdents64 put in `buf`",
            );
        }
        // `dirents(&buf[..n])`: one map over the records getdents64 put in a buffer.
        if c.args.len() == 1 && matches!(strip(&c.args[0]), Expr::Reference(_) | Expr::Index(_)) {
            if bound.is_some() {
                return err(
                    f.attrs[0].span(),
                    "a `for` over the entries of a buffer needs no bound: it is a cosy map",
                );
            }
            let (range, _) = self.range_operand(&c.args[0])?;
            self.scopes.push(HashMap::new());
            let name = self.fresh_name(var, vspan)?;
            self.bind(var, Ent::Dirent(name.clone()));
            self.emit(format!("map {name} in dirents({range}) {{"), for_head(f));
            let r = self.map_body(&f.body);
            self.scopes.pop();
            r?;
            self.emit("}".to_string(), for_head(f));
            return Ok(());
        }
        let dir = self.fd_operand(&c.args[0], ArgKind::Fd)?;
        let buf = if let Some(b) = c.args.get(1) {
            let (name, whole) = self.range_operand(b)?;
            if !whole {
                return err_at(&b, "`dirents` reads into a whole buffer: `&mut buf`");
            }
            name
        } else {
            let name = format!("{var}.ents");
            let local = if self.map_depth > 0 { " local" } else { "" };
            self.decls
                .push((format!("buffer {name} 65536{local}"), loc(c)));
            name
        };
        let bound = bound.unwrap_or(1_000_000);
        let top = self.new_label("batch");
        let end = self.new_label("end");
        let n = format!("{var}.batch");
        self.place(&top, f.span());
        self.emit(format!("{n} = getdents64 {dir} {buf}"), loc(c));
        self.emit(format!("if {n} == 0 goto {end}"), loc(c));
        self.scopes.push(HashMap::new());
        let name = self.fresh_name(var, vspan)?;
        self.bind(var, Ent::Dirent(name.clone()));
        self.emit(
            format!("map {name} in dirents({buf}[0..{n}]) {{"),
            for_head(f),
        );
        let r = self.map_body(&f.body);
        self.scopes.pop();
        r?;
        self.emit("}".to_string(), for_head(f));
        self.emit(format!("goto {top} bound {bound}"), for_head(f));
        self.place(&end, f.span());
        Ok(())
    }

    /// Jumps to `label` when `cond` is `sense`.
    fn jump_if(
        &mut self,
        cond: &Expr,
        sense: bool,
        label: &str,
        bound: Option<u64>,
    ) -> syn::Result<()> {
        let span = loc(cond);
        let bound_text = bound.map(|b| format!(" bound {b}")).unwrap_or_default();
        match strip(cond) {
            Expr::Unary(u) if matches!(u.op, UnOp::Not(_)) => {
                self.jump_if(&u.expr, !sense, label, bound)
            }
            Expr::Binary(b) if matches!(b.op, BinOp::And(_)) => {
                if sense {
                    let skip = self.new_label("and");
                    self.jump_if(&b.left, false, &skip, None)?;
                    self.jump_if(&b.right, true, label, bound)?;
                    self.place(&skip, span);
                } else {
                    self.jump_if(&b.left, false, label, bound)?;
                    self.jump_if(&b.right, false, label, bound)?;
                }
                Ok(())
            }
            Expr::Binary(b) if matches!(b.op, BinOp::Or(_)) => {
                if sense {
                    self.jump_if(&b.left, true, label, bound)?;
                    self.jump_if(&b.right, true, label, bound)?;
                } else {
                    let skip = self.new_label("or");
                    self.jump_if(&b.left, true, &skip, None)?;
                    self.jump_if(&b.right, false, label, bound)?;
                    self.place(&skip, span);
                }
                Ok(())
            }
            Expr::Binary(b) if comparison(&b.op).is_some() => {
                let (op, neg) = comparison(&b.op).unwrap_or(("==", "!="));
                let x = self.value(&b.left)?;
                let y = self.value(&b.right)?;
                let op = if sense { op } else { neg };
                self.emit(
                    format!("if {} {op} {} goto {label}{bound_text}", x.text(), y.text()),
                    span,
                );
                Ok(())
            }
            Expr::Let(l) => err_at(
                &l,
                "`if let` is not supported: match a call's result with `match`",
            ),
            e => {
                let v = self.value(e)?;
                let op = if sense { "!=" } else { "==" };
                self.emit(
                    format!("if {} {op} 0 goto {label}{bound_text}", v.text()),
                    span,
                );
                Ok(())
            }
        }
    }

    // ---- expressions ----

    fn unsupported<T>(&self, e: &Expr) -> syn::Result<T> {
        let (what, instead) = match e {
            Expr::Closure(_) => return self.closure_error(loc(e)),
            Expr::Return(_) => (
                "`return`",
                "leave loops with `break`; the outputs are the struct expression that ends the body",
            ),
            Expr::Async(_) | Expr::Await(_) => (
                "async code",
                "a compound's calls are issued by cosy; write them as plain calls",
            ),
            Expr::Unsafe(_) => (
                "`unsafe`",
                "a compound needs none: write the calls as plain calls",
            ),
            Expr::Macro(_) => ("a macro call", "write the operations it stands for"),
            Expr::Index(_) => (
                "indexing outside a call",
                "read a buffer with `load_u8(&buf, off)` .. `load_u64`, pass ranges `&buf[a..b]` to calls",
            ),
            Expr::Reference(_) => (
                "a reference outside a call",
                "`&buf[..n]` is an operand of a call",
            ),
            Expr::Lit(_) => (
                "this literal",
                "integers and, as operands, strings (paths) are the literals a compound has",
            ),
            Expr::MethodCall(_) => (
                "this method call",
                "the methods are `a.min(b)` and `a.max(b)`; system calls are functions: `read(fd, &mut buf)?`",
            ),
            Expr::Tuple(_) => ("a tuple", "every value of a compound is one integer"),
            Expr::Struct(_) => (
                "a struct expression",
                "only the outputs, at the end of the body, are a struct",
            ),
            Expr::Let(_) => ("`let` in an expression", "use `if` on a comparison"),
            Expr::Range(_) => (
                "a range outside a `for`",
                "iterate over it: `for i in a..b { .. }`",
            ),
            _ => (
                "this expression",
                "see docs/macro.md for the Rust a compound is written in",
            ),
        };
        err_at(
            &e,
            format!("{what} is not supported in `compound!`: {instead}"),
        )
    }

    /// Folds an expression of literals and cosy constants.
    fn const_eval(&self, e: &Expr) -> Option<i64> {
        match strip(e) {
            Expr::Lit(l) => match &l.lit {
                Lit::Int(i) => parse_int_lit(i),
                Lit::Bool(b) => Some(i64::from(b.value)),
                _ => None,
            },
            Expr::Path(p) => {
                let id = p.path.get_ident().map(|i| i.to_string());
                if let Some(id) = &id
                    && self.lookup(id).is_some()
                {
                    return None;
                }
                constant_path(&p.path)
            }
            Expr::Unary(u) => {
                let v = self.const_eval(&u.expr)?;
                match u.op {
                    UnOp::Neg(_) => Some(v.wrapping_neg()),
                    UnOp::Not(_) => Some(!v),
                    _ => None,
                }
            }
            Expr::Cast(c) if cast_ok(&c.ty) => self.const_eval(&c.expr),
            Expr::Binary(b) => {
                let op = arith(&b.op).or_else(|| comparison(&b.op).map(|(o, _)| o))?;
                let x = self.const_eval(&b.left)?;
                let y = self.const_eval(&b.right)?;
                text_op(op)?.apply(x, y)
            }
            _ => None,
        }
    }

    /// An integer operand, emitting operations into temporaries as needed.
    fn value(&mut self, e: &Expr) -> syn::Result<Val> {
        if let Some(v) = self.const_eval(e) {
            return Ok(Val::Imm(v));
        }
        match strip(e) {
            Expr::Path(p) => {
                let Some(id) = p.path.get_ident().map(|i| i.to_string()) else {
                    return err_at(
                        &p,
                        "not a cosy constant (O_*, AT_*, STATX_*, DT_*, ...) nor a variable of the compound",
                    );
                };
                match self.lookup(&id) {
                    Some(Ent::Reg(r)) => Ok(Val::Reg(r)),
                    Some(Ent::Fd(_)) => err_at(
                        &p,
                        format!("`{id}` is a descriptor, not an integer: pass it to a call"),
                    ),
                    Some(Ent::Buf(_)) => err_at(
                        &p,
                        format!(
                            "`{id}` is a buffer, not an integer: pass `&{id}[..]` to a call, or read it with `load_u64(&{id}, off)`"
                        ),
                    ),
                    Some(Ent::PathVar(_) | Ent::PathInput(_)) => err_at(
                        &p,
                        format!("`{id}` is a path, not an integer: pass it to a call"),
                    ),
                    Some(Ent::Dirent(_)) => err_at(
                        &p,
                        format!(
                            "`{id}` is a directory entry: `{id}` is its name (a path), `{id}.kind` its type, `{id}.ino` its inode"
                        ),
                    ),
                    None => err_at(
                        &p,
                        format!(
                            "cannot find `{id}` in the compound: not a variable declared in it, an input, nor a cosy constant (O_*, AT_*, STATX_*, DT_*, ...)"
                        ),
                    ),
                }
            }
            Expr::Field(f) => {
                let base = path_ident(&f.base);
                let member = match &f.member {
                    syn::Member::Named(i) => i.to_string(),
                    syn::Member::Unnamed(_) => String::new(),
                };
                match base.as_deref().and_then(|b| self.lookup(b)) {
                    Some(Ent::Dirent(n)) => match member.as_str() {
                        "kind" => Ok(Val::Reg(format!("{n}.type"))),
                        "ino" => Ok(Val::Reg(format!("{n}.ino"))),
                        _ => err_at(
                            &f.member,
                            "a directory entry has `kind` (d_type: DT_REG, DT_DIR...) and `ino`; the entry itself is its name",
                        ),
                    },
                    _ => err_at(
                        &f,
                        "fields are those of a directory entry (`e.kind`, `e.ino`) only",
                    ),
                }
            }
            Expr::Binary(b) => {
                let t = self.tmp();
                self.binary_into(&t, b)?;
                Ok(Val::Reg(t))
            }
            Expr::Unary(u) => match u.op {
                UnOp::Neg(_) => {
                    let v = self.value(&u.expr)?;
                    let t = self.tmp();
                    self.emit(format!("{t} = 0 - {}", v.text()), loc(e));
                    Ok(Val::Reg(t))
                }
                UnOp::Not(_) => {
                    let v = self.value(&u.expr)?;
                    let t = self.tmp();
                    self.emit(format!("{t} = {} ^ -1", v.text()), loc(e));
                    Ok(Val::Reg(t))
                }
                _ => err_at(
                    &u,
                    "`*` is not supported: values are integers, not pointers",
                ),
            },
            Expr::Cast(c) => {
                if !cast_ok(&c.ty) {
                    return err_at(
                        &c.ty,
                        "values are i64: the casts accepted are `as i64`, `as u64`, `as usize`, `as isize`, which leave it unchanged",
                    );
                }
                self.value(&c.expr)
            }
            Expr::Call(_)
            | Expr::Try(_)
            | Expr::MethodCall(_)
            | Expr::If(_)
            | Expr::Match(_)
            | Expr::Block(_) => {
                let t = self.tmp();
                self.assign(&t, e)?;
                Ok(Val::Reg(t))
            }
            other => self.unsupported(other),
        }
    }

    fn binary_into(&mut self, dst: &str, b: &syn::ExprBinary) -> syn::Result<()> {
        let op = if let Some(o) = arith(&b.op) {
            o
        } else if let Some((o, _)) = comparison(&b.op) {
            o
        } else if matches!(b.op, BinOp::And(_) | BinOp::Or(_)) {
            return err_at(
                &b.op,
                "`&&` and `||` are supported in the conditions of `if` and `while` only",
            );
        } else {
            return err_at(
                &b.op,
                "this operator is an assignment: write it as a statement",
            );
        };
        let x = self.value(&b.left)?;
        let y = self.value(&b.right)?;
        self.emit(format!("{dst} = {} {op} {}", x.text(), y.text()), loc(b));
        Ok(())
    }

    /// Lowers `e` into register `dst`.
    fn assign(&mut self, dst: &str, e: &Expr) -> syn::Result<()> {
        if let Some(v) = self.const_eval(e) {
            self.emit(format!("{dst} = {v}"), loc(e));
            return Ok(());
        }
        match strip(e) {
            Expr::Binary(b) => self.binary_into(dst, b),
            Expr::Call(_) | Expr::Try(_) => self.call_into(Dest::Reg(dst.to_string()), e),
            Expr::MethodCall(m)
                if (m.method == "min" || m.method == "max") && m.args.len() == 1 =>
            {
                let x = self.value(&m.receiver)?;
                let y = self.value(&m.args[0])?;
                self.emit(
                    format!("{dst} = {} {} {}", x.text(), m.method, y.text()),
                    loc(m),
                );
                Ok(())
            }
            Expr::If(i) => {
                let Some((_, els)) = &i.else_branch else {
                    return err_at(&i, "an `if` that gives a value needs an `else`");
                };
                let else_l = self.new_label("else");
                let end = self.new_label("endif");
                self.jump_if(&i.cond, false, &else_l, None)?;
                self.value_block(dst, &i.then_branch)?;
                self.emit(format!("goto {end}"), loc(i));
                self.place(&else_l, els.span());
                match &**els {
                    Expr::Block(b) => self.value_block(dst, &b.block)?,
                    other => self.assign(dst, other)?,
                }
                self.place(&end, i.span());
                Ok(())
            }
            Expr::Match(m) => self.match_into(Some(dst), m),
            Expr::Block(b) => self.value_block(dst, &b.block),
            Expr::MethodCall(_) => self.unsupported(e),
            _ => {
                let v = self.value(e)?;
                self.emit(format!("{dst} = {}", v.text()), loc(e));
                Ok(())
            }
        }
    }

    /// A block whose tail expression is assigned to `dst`.
    fn value_block(&mut self, dst: &str, b: &Block) -> syn::Result<()> {
        self.scopes.push(HashMap::new());
        let r = (|| {
            let Some((Stmt::Expr(tail, None), rest)) = b.stmts.split_last() else {
                return err_at(
                    &b,
                    "this block must end with the value it gives (no semicolon)",
                );
            };
            for s in rest {
                self.stmt(s)?;
            }
            self.assign(dst, tail)
        })();
        self.scopes.pop();
        r
    }

    fn set_mode(&mut self, mode: Mode, span: Span) -> syn::Result<()> {
        match self.mode {
            None => {
                self.mode = Some((mode, span));
                Ok(())
            }
            Some((m, _)) if m == mode => Ok(()),
            Some((_, first)) => {
                let mut e = syn::Error::new(
                    span,
                    "a compound either stops at the first failing call (`?` on every call) or continues past failures (`match` on every call's result): cosy's error mode is the whole compound's",
                );
                e.combine(syn::Error::new(first, "the other mode was chosen here"));
                Err(e)
            }
        }
    }

    /// `match call(..) { Ok(n) => .., Err(errno) => .. }`: continue mode.
    fn match_into(&mut self, dst: Option<&str>, m: &ExprMatch) -> syn::Result<()> {
        let Expr::Call(c) = strip(&m.expr) else {
            return err_at(
                &m.expr,
                "`match` is on the result of a system call (`match read(fd, &mut buf) { Ok(n) => .., Err(errno) => .. }`); compare integers with `if`",
            );
        };
        let name = path_ident(&c.func).unwrap_or_default();
        let Some(sys) = Sys::from_name(&name) else {
            return err_at(
                &c.func,
                "`match` is on the result of a system call of cosy's table",
            );
        };
        if sys.spec().ret == RetKind::Fd {
            return err_at(
                &c,
                format!(
                    "the failure of `{name}` cannot be matched: a descriptor that failed to open holds no error code; open with `?`"
                ),
            );
        }
        self.set_mode(Mode::Continue, m.match_token.span)?;
        let mut ok_arm = None;
        let mut err_arm = None;
        for arm in &m.arms {
            if let Some(g) = &arm.guard {
                return err_at(&g.1, "match guards are not supported: use `if` in the arm");
            }
            let Pat::TupleStruct(ts) = &arm.pat else {
                return err_at(
                    &arm.pat,
                    "the arms are `Ok(n) => ..` and `Err(errno) => ..`",
                );
            };
            let which = ts
                .path
                .get_ident()
                .map(|i| i.to_string())
                .unwrap_or_default();
            let bind = match ts.elems.iter().collect::<Vec<_>>().as_slice() {
                [Pat::Ident(p)] => Some((p.ident.to_string(), p.ident.span())),
                [Pat::Wild(_)] => None,
                _ => {
                    return err_at(
                        &ts,
                        "an arm binds one name or `_`: `Ok(n)`, `Err(errno)`, `Err(_)`",
                    );
                }
            };
            match which.as_str() {
                "Ok" if ok_arm.is_none() => ok_arm = Some((bind, &*arm.body)),
                "Err" if err_arm.is_none() => err_arm = Some((bind, &*arm.body)),
                _ => {
                    return err_at(&ts.path, "the arms are one `Ok(..)` and one `Err(..)`");
                }
            }
        }
        let (Some(ok), Some(er)) = (ok_arm, err_arm) else {
            return err_at(
                &m,
                "a `match` on a call has an `Ok(..)` arm and an `Err(..)` arm",
            );
        };
        let r = self.tmp();
        self.sys_call(Dest::Reg(r.clone()), c, sys)?;
        let err_l = self.new_label("failed");
        let end = self.new_label("endmatch");
        self.emit(format!("if {r} < 0 goto {err_l}"), loc(m));
        for (k, ((bind, body), is_err)) in [(ok, false), (er, true)].into_iter().enumerate() {
            if k == 1 {
                self.place(&err_l, body.span());
            }
            self.scopes.push(HashMap::new());
            let res = (|| {
                if let Some((n, span)) = bind {
                    let text = self.fresh_reg(&n, span)?;
                    if is_err {
                        self.emit(format!("{text} = 0 - {r}"), span);
                    } else {
                        self.emit(format!("{text} = {r}"), span);
                    }
                }
                match (dst, body) {
                    (Some(d), Expr::Block(b)) => self.value_block(d, &b.block),
                    (Some(d), e) => self.assign(d, e),
                    (None, Expr::Block(b)) => self.block(&b.block),
                    (None, e) => self.expr_stmt(e),
                }
            })();
            self.scopes.pop();
            res?;
            if k == 0 {
                self.emit(format!("goto {end}"), loc(m));
            }
        }
        self.place(&end, m.span());
        Ok(())
    }

    /// Whether `e` is (a `?` of) a call whose row returns a descriptor.
    fn returns_fd(&self, e: &Expr) -> bool {
        let e = match strip(e) {
            Expr::Try(t) => strip(&t.expr),
            e => e,
        };
        if let Expr::Call(c) = e
            && let Some(n) = path_ident(&c.func)
            && let Some(s) = Sys::from_name(&n)
        {
            return s.spec().ret == RetKind::Fd;
        }
        false
    }

    /// A call statement or a call into `dest`: `name(args)` or `name(args)?`.
    fn call_into(&mut self, dest: Dest, e: &Expr) -> syn::Result<()> {
        let (call, tried) = match strip(e) {
            Expr::Try(t) => match strip(&t.expr) {
                Expr::Call(c) => (c, Some(t.question_token.span)),
                other => {
                    return err_at(&other, "`?` follows a system call: `read(fd, &mut buf)?`");
                }
            },
            Expr::Call(c) => (c, None),
            other => {
                return match dest {
                    Dest::Reg(r) => self.assign(&r, other),
                    _ => self.unsupported(other),
                };
            }
        };
        let Some(name) = path_ident(&call.func) else {
            return err_at(
                &call.func,
                "calls are to system calls and functions by name: `read(fd, &mut buf)?`, `find(&data[..n], word)`",
            );
        };
        if let Some(sys) = Sys::from_name(&name) {
            match tried {
                Some(span) => self.set_mode(Mode::Stop, span)?,
                None => {
                    return err_at(
                        &call,
                        format!(
                            "`{name}` can fail: write `{name}(..)?` to stop the compound when it does, or `match {name}(..) {{ Ok(n) => .., Err(errno) => .. }}` to go on"
                        ),
                    );
                }
            }
            return self.sys_call(dest, call, sys);
        }
        let dst = match dest {
            Dest::None => None,
            Dest::Reg(r) => Some(r),
            Dest::Fd(_) => {
                return err_at(
                    &call,
                    format!(
                        "`{name}` is not an open: only `openat` and `openat2` give descriptors"
                    ),
                );
            }
        };
        // load_u8 .. load_u64, store_u8 .. store_u64, min, max.
        for w in ["u8", "u16", "u32", "u64"] {
            if name == format!("load_{w}") {
                let Some(dst) = dst else {
                    return err_at(&call, format!("the value `load_{w}` reads is unused"));
                };
                if call.args.len() != 2 {
                    return err_at(&call, format!("`load_{w}(&buf, offset)`"));
                }
                let buf = self.buf_name(&call.args[0])?;
                let off = self.value(&call.args[1])?;
                self.emit(format!("{dst} = load {w} {buf} {}", off.text()), loc(call));
                return Ok(());
            }
            if name == format!("store_{w}") {
                if call.args.len() != 3 {
                    return err_at(&call, format!("`store_{w}(&mut buf, offset, value)`"));
                }
                let buf = self.buf_name(&call.args[0])?;
                let off = self.value(&call.args[1])?;
                let v = self.value(&call.args[2])?;
                self.emit(
                    format!("store {w} {buf} {} {}", off.text(), v.text()),
                    loc(call),
                );
                return Ok(());
            }
        }
        if (name == "min" || name == "max") && call.args.len() == 2 {
            let Some(dst) = dst else {
                return err_at(&call, format!("the value `{name}` gives is unused"));
            };
            let x = self.value(&call.args[0])?;
            let y = self.value(&call.args[1])?;
            self.emit(
                format!("{dst} = {} {name} {}", x.text(), y.text()),
                loc(call),
            );
            return Ok(());
        }
        // A built-in or a user function (unknown ones are the verifier's to report).
        if !BUILTINS.contains(&name.as_str()) {
            self.called_functions.insert(name.clone());
        }
        let _ = &self.declared_functions;
        let mut ops = Vec::new();
        for a in &call.args {
            ops.push(self.function_operand(a)?);
        }
        let head = match dst {
            Some(d) => format!("{d} = call {name}"),
            None => format!("call {name}"),
        };
        let mut line = head;
        for o in ops {
            line.push(' ');
            line.push_str(&o);
        }
        self.emit(line, loc(call));
        Ok(())
    }

    fn function_operand(&mut self, a: &Expr) -> syn::Result<String> {
        if let Expr::Lit(l) = strip(a)
            && let Lit::Str(s) = &l.lit
        {
            return Ok(quote_bytes(s.value().as_bytes()));
        }
        if let Expr::Lit(l) = strip(a)
            && let Lit::ByteStr(s) = &l.lit
        {
            return Ok(quote_bytes(&s.value()));
        }
        if let Some(id) = path_ident(a) {
            match self.lookup(&id) {
                Some(Ent::PathInput(n)) => return Ok(format!("${n}")),
                Some(Ent::Buf(_)) => return Ok(self.range_operand(a)?.0),
                _ => {}
            }
        }
        if matches!(strip(a), Expr::Reference(_) | Expr::Index(_)) {
            return Ok(self.range_operand(a)?.0);
        }
        Ok(self.value(a)?.text())
    }

    fn sys_call(&mut self, dest: Dest, call: &ExprCall, sys: Sys) -> syn::Result<()> {
        let spec = sys.spec();
        let name = spec.name;
        if call.args.len() != spec.args.len() {
            let sig: Vec<&str> = spec.args.iter().map(|a| a.name).collect();
            return err_at(
                &call,
                format!(
                    "`{name}` takes {} operand{} ({}), found {}; see {}",
                    spec.args.len(),
                    if spec.args.len() == 1 { "" } else { "s" },
                    sig.join(", "),
                    call.args.len(),
                    spec.man
                ),
            );
        }
        let mut ops = Vec::new();
        for (a, s) in call.args.iter().zip(spec.args) {
            let o = match s.kind {
                ArgKind::Fd | ArgKind::DirFd => self.fd_operand(a, s.kind)?,
                ArgKind::NewFd => {
                    let Some(id) = path_ident(a) else {
                        return err_at(
                            &a,
                            format!(
                                "`{}` of `{name}` names a new descriptor: a new variable name",
                                s.name
                            ),
                        );
                    };
                    let text = self.fresh_name(&id, a.span())?;
                    self.bind(&id, Ent::Fd(text.clone()));
                    text
                }
                ArgKind::Path | ArgKind::Str => self.path_operand(a, name, s.name)?,
                ArgKind::BufIn | ArgKind::BufOut => self.range_operand(a)?.0,
                ArgKind::Int | ArgKind::Flags(_) => self.value(a)?.text(),
            };
            ops.push(o);
        }
        let head = match (dest, spec.ret) {
            (Dest::None, RetKind::Value) => name.to_string(),
            (Dest::Reg(r), RetKind::Value) => format!("{r} = {name}"),
            (Dest::Fd(f), RetKind::Fd) => format!("{f} = {name}"),
            (Dest::None, RetKind::Fd) => {
                return err_at(
                    &call,
                    format!(
                        "the descriptor `{name}` opens must be kept: `let fd = {name}(..)?;` (and closed)"
                    ),
                );
            }
            (Dest::Reg(_), RetKind::Fd) => {
                return err_at(
                    &call,
                    format!(
                        "`{name}` gives a descriptor: bind it with `let`, it is not an integer"
                    ),
                );
            }
            (Dest::Fd(_), RetKind::Value) => {
                return err_at(
                    &call,
                    format!("`{name}` gives an integer, not a descriptor"),
                );
            }
        };
        let mut line = head;
        for o in ops {
            line.push(' ');
            line.push_str(&o);
        }
        self.emit(line, loc(call));
        Ok(())
    }

    fn fd_operand(&mut self, a: &Expr, kind: ArgKind) -> syn::Result<String> {
        let Some(id) = path_ident(a) else {
            return err_at(
                &a,
                "a descriptor operand is a variable bound to an open, `cwd`, `stdin`, `stdout` or `stderr`",
            );
        };
        if let Some(e) = self.lookup(&id) {
            return match e {
                Ent::Fd(f) => Ok(f),
                _ => err_at(&a, format!("`{id}` is not a descriptor")),
            };
        }
        match id.as_str() {
            "cwd" | "CWD" | "AT_FDCWD" => {
                if kind == ArgKind::Fd {
                    return err_at(
                        &a,
                        "`cwd` stands for a directory a path is relative to: this operand needs an open descriptor",
                    );
                }
                Ok("cwd".into())
            }
            "stdin" | "STDIN" => Ok("stdin".into()),
            "stdout" | "STDOUT" => Ok("stdout".into()),
            "stderr" | "STDERR" => Ok("stderr".into()),
            _ => err_at(
                &a,
                format!(
                    "cannot find the descriptor `{id}` in the compound: bind one with `let {id} = openat(..)?;`"
                ),
            ),
        }
    }

    fn path_operand(&mut self, a: &Expr, call: &str, arg: &str) -> syn::Result<String> {
        if let Expr::Lit(l) = strip(a)
            && let Lit::Str(s) = &l.lit
        {
            return Ok(quote_bytes(s.value().as_bytes()));
        }
        if let Some(id) = path_ident(a) {
            match self.lookup(&id) {
                Some(Ent::PathInput(n)) => return Ok(format!("${n}")),
                Some(Ent::PathVar(n) | Ent::Dirent(n)) => return Ok(n),
                Some(_) => {
                    return err_at(
                        &a,
                        format!("`{id}` is not a path: `{arg}` of `{call}` is a path"),
                    );
                }
                None => {
                    return err_at(
                        &a,
                        format!(
                            "cannot find the path `{id}` in the compound: a path is a string literal, a path input, or the variable of a `for` over paths or entries"
                        ),
                    );
                }
            }
        }
        err_at(
            &a,
            format!(
                "`{arg}` of `{call}` is a path: a string literal, a path input, or the variable of a `for` over paths or directory entries"
            ),
        )
    }

    fn buf_name(&mut self, a: &Expr) -> syn::Result<String> {
        let inner = match strip(a) {
            Expr::Reference(r) => strip(&r.expr),
            e => e,
        };
        if let Some(id) = path_ident(inner)
            && let Some(Ent::Buf(b)) = self.lookup(&id)
        {
            return Ok(b);
        }
        err_at(
            &a,
            "a buffer: `&buf` for one declared with `let mut buf = [0u8; SIZE];`",
        )
    }

    /// A buffer range `&buf`, `&mut buf[a..b]`, ...; and whether it is the whole buffer.
    fn range_operand(&mut self, a: &Expr) -> syn::Result<(String, bool)> {
        let inner = match strip(a) {
            Expr::Reference(r) => strip(&r.expr),
            e => e,
        };
        let (base, idx) = match inner {
            Expr::Index(ix) => (&*ix.expr, Some(&*ix.index)),
            e => (e, None),
        };
        let Some(id) = path_ident(base) else {
            return err_at(
                &a,
                "a buffer operand is `&buf`, `&mut buf`, or a range of it: `&buf[a..b]`, `&mut buf[..n]`",
            );
        };
        let buf = match self.lookup(&id) {
            Some(Ent::Buf(b)) => b,
            Some(_) => {
                return err_at(
                    &base,
                    format!(
                        "`{id}` is not a buffer: declare one with `let mut {id} = [0u8; SIZE];`"
                    ),
                );
            }
            None => {
                return err_at(
                    &base,
                    format!(
                        "cannot find the buffer `{id}`: declare it with `let mut {id} = [0u8; SIZE];`"
                    ),
                );
            }
        };
        let Some(idx) = idx else {
            return Ok((buf, true));
        };
        let Expr::Range(r) = strip(idx) else {
            return err_at(
                &idx,
                "a buffer operand takes a range of bytes: `buf[a..b]`, `buf[..n]`, `buf[a..]`",
            );
        };
        if matches!(r.limits, syn::RangeLimits::Closed(_)) {
            return err_at(&r, "write the range half-open: `buf[a..b]`");
        }
        let start = match &r.start {
            Some(s) => self.value(s)?,
            None => Val::Imm(0),
        };
        let end = match &r.end {
            Some(e) => Some(self.value(e)?),
            None => None,
        };
        let whole = matches!(start, Val::Imm(0)) && end.is_none();
        let text = match end {
            Some(e) => format!("{buf}[{}..{}]", start.text(), e.text()),
            None => format!("{buf}[{}..]", start.text()),
        };
        Ok((text, whole))
    }
}

enum Jump {
    Break(Span),
    Continue(Span),
}

/// `{ break; }` or `{ continue; }`.
fn lone_jump(b: &Block) -> Option<Jump> {
    match b.stmts.as_slice() {
        [Stmt::Expr(Expr::Break(br), _)] if br.expr.is_none() && br.label.is_none() => {
            Some(Jump::Break(br.span()))
        }
        [Stmt::Expr(Expr::Continue(c), _)] if c.label.is_none() => Some(Jump::Continue(c.span())),
        _ => None,
    }
}

/// Whether a loop body has a `continue` of its own (not one of a nested loop).
fn has_continue(b: &Block) -> bool {
    fn expr(e: &Expr) -> bool {
        match e {
            Expr::Continue(_) => true,
            Expr::Loop(_) | Expr::While(_) | Expr::ForLoop(_) | Expr::Closure(_) => false,
            Expr::If(i) => {
                expr(&i.cond)
                    || block(&i.then_branch)
                    || i.else_branch.as_ref().is_some_and(|(_, e)| expr(e))
            }
            Expr::Block(b) => block(&b.block),
            Expr::Match(m) => m.arms.iter().any(|a| expr(&a.body)),
            _ => false,
        }
    }
    fn block(b: &Block) -> bool {
        b.stmts.iter().any(|s| match s {
            Stmt::Expr(e, _) => expr(e),
            Stmt::Local(l) => l.init.as_ref().is_some_and(|i| expr(&i.expr)),
            _ => false,
        })
    }
    block(b)
}

fn strip(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => strip(&p.expr),
        Expr::Group(g) => strip(&g.expr),
        e => e,
    }
}

fn path_ident(e: &Expr) -> Option<String> {
    match strip(e) {
        Expr::Path(p) if p.qself.is_none() => p.path.get_ident().map(|i| i.to_string()),
        _ => None,
    }
}

fn cast_ok(ty: &syn::Type) -> bool {
    matches!(ty, syn::Type::Path(p) if ["i64", "u64", "usize", "isize"].iter().any(|t| p.path.is_ident(t)))
}

fn parse_int_lit(i: &syn::LitInt) -> Option<i64> {
    let digits = i.base10_digits();
    digits
        .parse::<i64>()
        .ok()
        .or_else(|| digits.parse::<u64>().ok().map(|v| v as i64))
}

/// A cosy constant named by `O_RDONLY`, `cosy::flags::O_RDONLY` or `OFlags::RDONLY`.
fn constant_path(p: &syn::Path) -> Option<i64> {
    let last = p.segments.last()?.ident.to_string();
    if let Some(v) = cosy_model::flags::constant(&last) {
        return Some(v);
    }
    if p.segments.len() >= 2 {
        let ty = p.segments[p.segments.len() - 2].ident.to_string();
        let prefix = match ty.as_str() {
            "OFlags" => "O_",
            "AtFlags" => "AT_",
            "ResolveFlags" => "RESOLVE_",
            "StatxFlags" => "STATX_",
            "RenameFlags" => "RENAME_",
            "SpliceFlags" => "SPLICE_F_",
            "FileType" | "DirentType" => "DT_",
            _ => return None,
        };
        return cosy_model::flags::constant(&format!("{prefix}{last}"));
    }
    None
}

fn arith(op: &BinOp) -> Option<&'static str> {
    Some(match op {
        BinOp::Add(_) => "+",
        BinOp::Sub(_) => "-",
        BinOp::Mul(_) => "*",
        BinOp::Div(_) => "/",
        BinOp::Rem(_) => "%",
        BinOp::BitAnd(_) => "&",
        BinOp::BitOr(_) => "|",
        BinOp::BitXor(_) => "^",
        BinOp::Shl(_) => "<<",
        BinOp::Shr(_) => ">>",
        _ => return None,
    })
}

fn compound_assign(op: &BinOp) -> Option<&'static str> {
    Some(match op {
        BinOp::AddAssign(_) => "+",
        BinOp::SubAssign(_) => "-",
        BinOp::MulAssign(_) => "*",
        BinOp::DivAssign(_) => "/",
        BinOp::RemAssign(_) => "%",
        BinOp::BitAndAssign(_) => "&",
        BinOp::BitOrAssign(_) => "|",
        BinOp::BitXorAssign(_) => "^",
        BinOp::ShlAssign(_) => "<<",
        BinOp::ShrAssign(_) => ">>",
        _ => return None,
    })
}

/// A comparison and its negation.
fn comparison(op: &BinOp) -> Option<(&'static str, &'static str)> {
    Some(match op {
        BinOp::Eq(_) => ("==", "!="),
        BinOp::Ne(_) => ("!=", "=="),
        BinOp::Lt(_) => ("<", ">="),
        BinOp::Le(_) => ("<=", ">"),
        BinOp::Gt(_) => (">", "<="),
        BinOp::Ge(_) => (">=", "<"),
        _ => return None,
    })
}

fn text_op(sym: &str) -> Option<cosy_model::BinOp> {
    cosy_model::BinOp::ALL
        .iter()
        .copied()
        .find(|o| o.symbol() == sym)
}

/// A string literal of the text format.
pub fn quote_bytes(bytes: &[u8]) -> String {
    let mut s = String::from("\"");
    for &b in bytes {
        match b {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            0 => s.push_str("\\0"),
            0x20..=0x7e => s.push(char::from(b)),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s.push('"');
    s
}
