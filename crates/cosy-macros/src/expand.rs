//! From the function to the expansion: lower, parse and verify at compile time, then emit the
//! module that runs the compound.

use std::collections::BTreeSet;

use cosy_model::Policy;
use proc_macro2::TokenStream;
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, Lit, Pat, Type};

use crate::lower::{Loc, Lower};

/// What kind of value an input is.
enum InputTy {
    /// A path, set from `impl AsRef<OsStr>`.
    Path,
    /// Bytes (a needle for `find`), set from `impl AsRef<[u8]>`.
    Bytes,
    /// An integer.
    Int,
}

pub fn expand(item: &ItemFn) -> syn::Result<TokenStream> {
    let sig = &item.sig;
    if let Some(g) = sig.generics.params.first() {
        return Err(syn::Error::new(
            g.span(),
            "a compound has no generic parameters",
        ));
    }
    if sig.asyncness.is_some() || sig.unsafety.is_some() || sig.constness.is_some() {
        return Err(syn::Error::new(
            sig.fn_token.span,
            "a compound is a plain `fn NAME(inputs) -> Outputs { .. }`",
        ));
    }
    let out_ty = match &sig.output {
        syn::ReturnType::Type(_, t) => match &**t {
            Type::Path(p) if p.path.get_ident().is_some() => p.path.get_ident().cloned(),
            _ => None,
        },
        syn::ReturnType::Default => None,
    };
    let Some(out_ty) = out_ty else {
        return Err(syn::Error::new(
            sig.output
                .span()
                .join(sig.ident.span())
                .unwrap_or(sig.ident.span()),
            "name the struct of outputs the compound gives: `fn NAME(..) -> Outputs { ..; Outputs { total } }` (the macro declares it)",
        ));
    };

    if out_ty == "Error" {
        return Err(syn::Error::new(
            out_ty.span(),
            "the outputs struct cannot be named `Error`: the module has an `Error` of its own",
        ));
    }

    // Attributes: docs pass through; `#[functions(a, b)]` declares user functions.
    let mut docs = Vec::new();
    let mut functions = BTreeSet::new();
    for a in &item.attrs {
        if a.path().is_ident("doc") {
            docs.push(a.clone());
        } else if a.path().is_ident("functions") {
            a.parse_nested_meta(|m| {
                let id = m
                    .path
                    .get_ident()
                    .ok_or_else(|| m.error("a function name"))?;
                functions.insert(id.to_string());
                Ok(())
            })?;
        } else {
            return Err(syn::Error::new(
                a.span(),
                "unknown attribute on a compound: the attributes are doc comments and `#[functions(NAME, ..)]`",
            ));
        }
    }

    let mut lower = Lower::new(functions.clone());
    let mut inputs = Vec::new();
    for arg in &sig.inputs {
        let FnArg::Typed(pt) = arg else {
            return Err(syn::Error::new(arg.span(), "a compound takes no `self`"));
        };
        let Pat::Ident(pi) = &*pt.pat else {
            return Err(syn::Error::new(pt.pat.span(), "an input is `NAME: TYPE`"));
        };
        let name = pi.ident.to_string();
        if name == "policy" || name == "options" {
            return Err(syn::Error::new(
                pi.ident.span(),
                format!(
                    "an input cannot be named `{name}`: `run` has a parameter `{name}` of its own"
                ),
            ));
        }
        let ty = input_ty(&pt.ty)?;
        let mut default = None;
        for a in &pt.attrs {
            if a.path().is_ident("default") {
                default = Some(a.parse_args::<Lit>()?);
            } else {
                return Err(syn::Error::new(
                    a.span(),
                    "the only attribute of an input is `#[default(VALUE)]` (the value the compound's text shows)",
                ));
            }
        }
        match ty {
            InputTy::Path | InputTy::Bytes => {
                let bytes = match &default {
                    None => Vec::new(),
                    Some(Lit::Str(s)) => s.value().into_bytes(),
                    Some(Lit::ByteStr(s)) => s.value(),
                    Some(l) => {
                        return Err(syn::Error::new(
                            l.span(),
                            "a path's default is a string literal",
                        ));
                    }
                };
                lower.input_path(&name, &bytes, pi.ident.span())?;
            }
            InputTy::Int => {
                let v = match &default {
                    None => 0,
                    Some(Lit::Int(i)) => i.base10_parse::<i64>()?,
                    Some(l) => {
                        return Err(syn::Error::new(
                            l.span(),
                            "an integer's default is an integer literal",
                        ));
                    }
                };
                lower.input_int(&name, v, pi.ident.span())?;
            }
        }
        inputs.push((pi.ident.clone(), ty));
    }

    let (lowered, outputs) = lower.body(&item.block, &out_ty.to_string())?;
    let mut text = String::new();
    for (l, _) in &lowered.lines {
        text.push_str(l);
        text.push('\n');
    }
    let locs: Vec<Loc> = lowered.lines.iter().map(|(_, l)| *l).collect();
    let fallback = Loc::from(sig.ident.span());
    let line_loc = |line: u32| -> Loc {
        usize::try_from(line)
            .ok()
            .and_then(|l| l.checked_sub(1))
            .and_then(|l| locs.get(l))
            .copied()
            .unwrap_or(fallback)
    };

    // Compile time: parse, verify.
    let parsed = cosy_format::text::parse(&text).map_err(|e| {
        line_loc(e.line).error(format!(
            "cosy cannot read what this lowers to: {} (in `{}`)",
            e.message,
            text.lines()
                .nth(e.line.saturating_sub(1) as usize)
                .unwrap_or("")
        ))
    })?;
    let mut policy = Policy::trusted();
    policy.functions = functions.clone();
    if let Err(problems) = cosy_verify::verify(parsed.compound.clone(), &policy) {
        let mut error: Option<syn::Error> = None;
        for p in problems.with_lines(&parsed.op_lines) {
            let at = p.line.map(line_loc).unwrap_or(fallback);
            let mut msg = format!("the compound does not verify: {}", p.message);
            if p.rule == cosy_verify::Rule::UnknownFunction {
                msg.push_str(
                    "; it is not a system call of cosy's table either. A user function is declared with `#[functions(NAME)]` on the compound's fn and registered with `RunOptions::functions.register(\"NAME\", ..)`",
                );
            }
            if p.rule == cosy_verify::Rule::MapRegisterWrite
                || p.rule == cosy_verify::Rule::MapAccumulatorRead
            {
                msg.push_str(
                    " (a `for` is a cosy map: its iterations are independent, so it may only add to variables from outside it, `x += ..`)",
                );
            }
            let e = at.error(msg);
            match &mut error {
                None => error = Some(e),
                Some(all) => all.combine(e),
            }
        }
        if let Some(e) = error {
            return Err(e);
        }
    }
    let canonical = cosy_format::text::print(&parsed.compound);
    // The expansion parses `canonical` at run time: make sure, now, that it does.
    match cosy_format::text::parse(&canonical) {
        Ok(p) if cosy_format::text::print(&p.compound) == canonical => {}
        _ => {
            return Err(syn::Error::new(
                sig.ident.span(),
                format!(
                    "the canonical text of this compound does not read back (a bug of cosy's printer or of this macro):\n{canonical}"
                ),
            ));
        }
    }
    for f in &lowered.functions {
        functions.insert(f.clone());
    }

    // The expansion.
    let vis = &item.vis;
    let name = &sig.ident;
    let function_names: Vec<&String> = functions.iter().collect();
    let fields: Vec<_> = outputs.iter().map(|o| format_ident!("{}", o)).collect();
    let field_names: Vec<&String> = outputs.iter().collect();
    let params: Vec<TokenStream> = inputs
        .iter()
        .map(|(id, ty)| match ty {
            InputTy::Path => quote!(#id: impl ::core::convert::AsRef<::std::ffi::OsStr>),
            InputTy::Bytes => quote!(#id: impl ::core::convert::AsRef<[u8]>),
            InputTy::Int => quote!(#id: i64),
        })
        .collect();
    let key_items: Vec<TokenStream> = inputs
        .iter()
        .map(|(id, ty)| {
            let n = id.to_string();
            match ty {
                InputTy::Path => quote!(__Input::Bytes(#n, ::std::os::unix::ffi::OsStrExt::as_bytes(#id.as_ref()).to_vec())),
                InputTy::Bytes => quote!(__Input::Bytes(#n, #id.as_ref().to_vec())),
                InputTy::Int => quote!(__Input::Int(#n, #id)),
            }
        })
        .collect();
    let out_doc = format!(
        "The outputs of the compound [`{name}`](self), with the run's failed calls (continue mode) and statistics."
    );
    let field_docs: Vec<String> = outputs
        .iter()
        .map(|o| format!("The output `{o}`."))
        .collect();
    let text_doc =
        format!("The compound's canonical text (docs/text-format.md):\n\n```text\n{canonical}```");
    let private = quote!(::cosy::__private);

    Ok(quote! {
        #(#docs)*
        #[allow(dead_code, clippy::all)]
        #vis mod #name {
            #[doc = #out_doc]
            #[derive(Clone, Debug)]
            pub struct #out_ty {
                #( #[doc = #field_docs] pub #fields: i64, )*
                /// The calls that failed in continue mode, in order (empty in stop mode).
                pub errors: ::std::vec::Vec<::cosy::CallError>,
                /// The run's counters: operations, system calls by name, bytes, time.
                pub stats: ::cosy::Stats,
            }

            #[doc = #text_doc]
            pub const TEXT: &str = #canonical;

            /// The user functions the compound calls: register each in
            /// `RunOptions::functions` and allow it in `Policy::functions`.
            pub const FUNCTIONS: &[&str] = &[#(#function_names),*];

            /// Why a run did not give the outputs.
            #[derive(Debug)]
            pub enum Error {
                /// The compound, with these inputs, breaks the run's policy.
                Verify(#private::cosy_verify::Problems),
                /// The run stopped before its end.
                Run(::cosy::RunError),
            }

            impl ::core::fmt::Display for Error {
                fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                    match self {
                        Error::Verify(p) => write!(f, "the compound `{}` breaks the policy: {}", stringify!(#name), p),
                        Error::Run(e) => write!(f, "the compound `{}` stopped: {}", stringify!(#name), e),
                    }
                }
            }

            impl ::std::error::Error for Error {
                fn source(&self) -> ::core::option::Option<&(dyn ::std::error::Error + 'static)> {
                    match self {
                        Error::Verify(p) => Some(p),
                        Error::Run(e) => Some(e),
                    }
                }
            }

            /// The compound with its default inputs, parsed from [`TEXT`] at the first call.
            pub fn compound() -> &'static ::cosy::Compound {
                static COMPOUND: ::std::sync::OnceLock<::cosy::Compound> = ::std::sync::OnceLock::new();
                COMPOUND.get_or_init(|| match #private::cosy_format::text::parse(TEXT) {
                    Ok(p) => p.compound,
                    // TEXT is what the macro printed and parsed while compiling.
                    Err(e) => unreachable!("cosy's own canonical text did not parse: {e}"),
                })
            }

            #[derive(Clone, PartialEq, Eq)]
            enum __Input {
                Bytes(&'static str, ::std::vec::Vec<u8>),
                Int(&'static str, i64),
            }

            fn __with_inputs(inputs: &[__Input]) -> ::cosy::Compound {
                let mut c = compound().clone();
                for i in inputs {
                    let (name, value) = match i {
                        __Input::Bytes(n, _) | __Input::Int(n, _) => (*n, i),
                    };
                    let Some(pos) = c.inputs.iter().position(|x| x.name == name) else { continue };
                    match (&mut c.inputs[pos].kind, value) {
                        (#private::cosy_model::InputKind::Path(d), __Input::Bytes(_, b)) => {
                            let d = d.index();
                            if let Some(slot) = c.data.get_mut(d) {
                                *slot = b.clone();
                            }
                        }
                        (#private::cosy_model::InputKind::Int { default, .. }, __Input::Int(_, v)) => {
                            *default = *v;
                        }
                        _ => {}
                    }
                }
                c
            }

            fn __verify(policy: &::cosy::Policy, inputs: ::std::vec::Vec<__Input>) -> ::core::result::Result<::cosy::Verified, Error> {
                // One entry: the last policy and inputs verified (verifying is a pure
                // function of the compound and the policy, so the result can be reused).
                static LAST: ::std::sync::Mutex<::core::option::Option<(::cosy::Policy, ::std::vec::Vec<__Input>, ::cosy::Verified)>> =
                    ::std::sync::Mutex::new(None);
                if let Ok(last) = LAST.lock() {
                    if let Some((p, i, v)) = &*last {
                        if p == policy && *i == inputs {
                            return Ok(v.clone());
                        }
                    }
                }
                let v = ::cosy::verify(__with_inputs(&inputs), policy).map_err(Error::Verify)?;
                if let Ok(mut last) = LAST.lock() {
                    *last = Some((policy.clone(), inputs, v.clone()));
                }
                Ok(v)
            }

            /// The compound with these inputs, verified against `policy`.
            pub fn verify(policy: &::cosy::Policy, #(#params),*) -> ::core::result::Result<::cosy::Verified, Error> {
                __verify(policy, vec![#(#key_items),*])
            }

            /// Runs the compound with these inputs under `policy` with `options` (backend,
            /// user functions), verifying it first; returns its outputs.
            pub fn run(policy: &::cosy::Policy, options: &::cosy::RunOptions, #(#params),*) -> ::core::result::Result<#out_ty, Error> {
                let v = __verify(policy, vec![#(#key_items),*])?;
                let out = ::cosy::run(&v, options).map_err(Error::Run)?;
                Ok(#out_ty {
                    // Every field is an output of TEXT, so `get` finds it.
                    #( #fields: out.get(#field_names).unwrap_or_default(), )*
                    errors: out.errors,
                    stats: out.stats,
                })
            }
        }
    })
}

fn input_ty(ty: &Type) -> syn::Result<InputTy> {
    let bad = || {
        syn::Error::new(
            ty.span(),
            "an input is a path (`&Path`, `&OsStr`, `&str`), bytes (`&[u8]`) or an integer (`i64`)",
        )
    };
    match ty {
        Type::Path(p) if p.path.is_ident("i64") => Ok(InputTy::Int),
        Type::Reference(r) => match &*r.elem {
            Type::Path(p) => {
                let last = p.path.segments.last().map(|s| s.ident.to_string());
                match last.as_deref() {
                    Some("Path" | "OsStr" | "str") => Ok(InputTy::Path),
                    _ => Err(bad()),
                }
            }
            Type::Slice(s) => match &*s.elem {
                Type::Path(p) if p.path.is_ident("u8") => Ok(InputTy::Bytes),
                _ => Err(bad()),
            },
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}
