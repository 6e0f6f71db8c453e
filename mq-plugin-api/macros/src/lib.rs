//! The `#[plugin]` and `#[hooks]` attributes of `mq-plugin-api`. Use them through that crate,
//! which re-exports them with their documentation.

use proc_macro::TokenStream;
use proc_macro2::Span;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, ImplItem, ItemImpl, LitStr, ReturnType, Type, parse_macro_input};

/// Every hook: its method name and its `HookId` variant.
const HOOKS: &[(&str, &str)] = &[
    ("smtp_in_connect", "SmtpInConnect"),
    ("smtp_in_helo", "SmtpInHelo"),
    ("smtp_in_secure", "SmtpInSecure"),
    ("smtp_in_authenticate", "SmtpInAuthenticate"),
    ("smtp_in_mail_from", "SmtpInMailFrom"),
    ("smtp_in_rcpt_to", "SmtpInRcptTo"),
    ("smtp_in_data", "SmtpInData"),
    ("smtp_in_message", "SmtpInMessage"),
    ("smtp_in_close", "SmtpInClose"),
    ("queue_pickup", "QueuePickup"),
    ("smtp_out_connect", "SmtpOutConnect"),
    ("smtp_out_mail_from", "SmtpOutMailFrom"),
    ("smtp_out_rcpt_to", "SmtpOutRcptTo"),
    ("smtp_out_data", "SmtpOutData"),
    ("smtp_out_sent", "SmtpOutSent"),
    ("delivery_result", "DeliveryResult"),
];

/// Put on a plugin's `impl Plugin for T` block: makes its `async fn`s the trait's methods and
/// records which hooks the block defines, so the engine knows the plugin's chains without a
/// hand-kept list. A method marked `#[observe]` (taking `&Context` and `&Event`, returning
/// nothing) observes its hook instead of joining the hook's chain.
#[proc_macro_attribute]
pub fn hooks(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut errors = Vec::new();
    if !attr.is_empty() {
        let attr = proc_macro2::TokenStream::from(attr);
        errors.push(syn::Error::new(attr.span(), "#[hooks] takes no arguments"));
    }
    let mut item = parse_macro_input!(item as ItemImpl);
    let tokens = match expand_hooks(&mut item, &mut errors) {
        Ok(tokens) => tokens,
        Err(error) => refused(&error, &item),
    };
    with_errors(&errors, &tokens).into()
}

/// The item as it was written, after `error`: a refused item still compiles as far as it can,
/// so the author reads the attribute's error and not the errors its absence would cause.
fn refused(error: &syn::Error, item: &impl quote::ToTokens) -> proc_macro2::TokenStream {
    let error = error.to_compile_error();
    quote!(#error #item)
}

/// `tokens` preceded by each error in `errors`.
fn with_errors(
    errors: &[syn::Error],
    tokens: &proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    let errors = errors.iter().map(syn::Error::to_compile_error);
    quote!(#(#errors)* #tokens)
}

/// The hook a method of a `#[hooks]` block defines: its `HookId` variant, or why the method is
/// not a hook.
fn hook_of(method: &syn::ImplItemFn) -> syn::Result<&'static str> {
    let name = method.sig.ident.to_string();
    let Some((_, variant)) = HOOKS.iter().find(|(hook, _)| *hook == name) else {
        let known: Vec<&str> = HOOKS.iter().map(|(hook, _)| *hook).collect();
        let message = format!(
            "`{name}` is not an mq hook; the hooks are: {}",
            known.join(", ")
        );
        return Err(syn::Error::new(method.sig.ident.span(), message));
    };
    if method.sig.asyncness.is_none() {
        return Err(syn::Error::new(
            method.sig.fn_token.span,
            "a hook is an `async fn`",
        ));
    }
    Ok(variant)
}

/// Expands a `#[hooks]` block. A method that is not a hook is reported in `errors` and moved to
/// an inherent `impl` of its own, where it still compiles (and uses what it imports); the rest
/// of the block expands as usual, so the plugin still implements `Plugin` and the one error
/// shown is the method's.
fn expand_hooks(
    item: &mut ItemImpl,
    errors: &mut Vec<syn::Error>,
) -> syn::Result<proc_macro2::TokenStream> {
    let Some((_, trait_path, _)) = &item.trait_ else {
        return Err(syn::Error::new(
            item.self_ty.span(),
            "#[hooks] goes on an `impl Plugin for T` block",
        ));
    };
    let trait_path = trait_path.clone();
    let mut variants = Vec::new();
    let mut observed = Vec::new();
    let mut refused = Vec::new();
    for member in std::mem::take(&mut item.items) {
        let ImplItem::Fn(mut method) = member else {
            item.items.push(member);
            continue;
        };
        let observer = match take_observe_marker(&mut method) {
            Ok(observer) => observer,
            Err(error) => {
                errors.push(error);
                refused.push(method);
                continue;
            }
        };
        match is_lifecycle(&method) {
            Ok(true) if observer => {
                let message = "`start` and `stop` are called once per core, not observed";
                errors.push(syn::Error::new(method.sig.ident.span(), message));
                refused.push(method);
                continue;
            }
            Ok(true) => {
                item.items.push(ImplItem::Fn(method));
                continue;
            }
            Ok(false) => {}
            Err(error) => {
                errors.push(error);
                refused.push(method);
                continue;
            }
        }
        let variant = match hook_of(&method) {
            Ok(variant) => syn::Ident::new(variant, method.sig.ident.span()),
            Err(error) => {
                errors.push(error);
                refused.push(method);
                continue;
            }
        };
        if observer {
            if let Err(error) = check_observer(&method.sig) {
                errors.push(error);
                refused.push(method);
                continue;
            }
            let ident = &method.sig.ident;
            method.sig.ident = syn::Ident::new(&format!("observe_{ident}"), ident.span());
            observed.push(quote!(.with(::mq_plugin_api::HookId::#variant)));
        } else {
            variants.push(quote!(.with(::mq_plugin_api::HookId::#variant)));
        }
        item.items.push(ImplItem::Fn(method));
    }
    let item = &*item;
    let self_ty = &item.self_ty;
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    let span = trait_path.span();
    let refused = (!refused.is_empty()).then(|| {
        quote! {
            #[allow(dead_code)]
            impl #impl_generics #self_ty #where_clause {
                #(#refused)*
            }
        }
    });
    Ok(quote_spanned! {span=>
        #[::mq_plugin_api::__private::async_trait(?Send)]
        #item

        #refused

        impl #impl_generics ::mq_plugin_api::PluginHooks for #self_ty #where_clause {
            const HOOKS: ::mq_plugin_api::HookSet = ::mq_plugin_api::HookSet::EMPTY #(#variants)*;
            const OBSERVES: ::mq_plugin_api::HookSet = ::mq_plugin_api::HookSet::EMPTY #(#observed)*;
        }

        impl #impl_generics ::mq_plugin_api::Hooked for #self_ty #where_clause {}
    })
}

/// Whether `method` is a lifecycle method (`start`, `stop`): not a hook, so it joins no chain;
/// the engine calls it once per core. It must be an `async fn` too.
fn is_lifecycle(method: &syn::ImplItemFn) -> syn::Result<bool> {
    let name = method.sig.ident.to_string();
    if !LIFECYCLE.contains(&name.as_str()) {
        return Ok(false);
    }
    if method.sig.asyncness.is_none() {
        return Err(syn::Error::new(
            method.sig.fn_token.span,
            format!("`{name}` is an `async fn`"),
        ));
    }
    Ok(true)
}

/// The lifecycle methods of `Plugin`: called once per core, not chained.
const LIFECYCLE: &[&str] = &["start", "stop"];

/// Whether `method` carries `#[observe]`, which is taken off: it marks the method as an observer
/// of its hook rather than a member of the hook's chain.
fn take_observe_marker(method: &mut syn::ImplItemFn) -> syn::Result<bool> {
    let before = method.attrs.len();
    let mut marker = None;
    method.attrs.retain(|attr| {
        let is_marker = attr.path().is_ident("observe");
        if is_marker {
            marker = Some(attr.clone());
        }
        !is_marker
    });
    if let Some(attr) = marker {
        if before - method.attrs.len() > 1 || !matches!(attr.meta, syn::Meta::Path(_)) {
            return Err(syn::Error::new(
                attr.span(),
                "write `#[observe]` once, without arguments",
            ));
        }
        return Ok(true);
    }
    Ok(false)
}

/// An observer looks and nothing more: `&Context`, the event by shared reference, no result.
fn check_observer(sig: &syn::Signature) -> syn::Result<()> {
    if let ReturnType::Type(_, ty) = &sig.output {
        return Err(syn::Error::new(
            ty.span(),
            "an observer returns nothing: it cannot change the step's outcome",
        ));
    }
    for input in sig.inputs.iter().skip(1) {
        if let FnArg::Typed(arg) = input
            && let Type::Reference(reference) = &*arg.ty
            && reference.mutability.is_some()
        {
            return Err(syn::Error::new(
                reference.span(),
                "an observer gets its context and event read-only: `&Context`, `&Event`",
            ));
        }
    }
    Ok(())
}

/// Put on the inherent `impl` block that holds a plugin's `fn new`: registers the plugin under
/// `name` through inventory, with a factory that parses the plugin's config section into the
/// type `new` takes. `new` takes nothing, its config type, `&PluginConfig` (the raw table and
/// `PluginConfig::shared` state), or its config type and then `&PluginConfig`.
///
/// The plugin's own defaults for the engine's settings follow the name: `on_error = "skip"`,
/// `order = "last"` (or `"first"`, or an integer), `timeout = "10s"`, `enabled = false`.
#[proc_macro_attribute]
pub fn plugin(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = parse_macro_input!(item as ItemImpl);
    let expanded =
        plugin_args(attr).and_then(|(name, defaults)| expand_plugin(&name, &item, &defaults));
    match expanded {
        Ok(tokens) => tokens.into(),
        Err(error) => refused(&error, &item).into(),
    }
}

/// The arguments of `#[plugin(..)]`: the name, and the `__with_defaults(..)` call of the
/// plugin's defaults for the engine's settings.
fn plugin_args(attr: TokenStream) -> syn::Result<(LitStr, proc_macro2::TokenStream)> {
    let mut args = PluginArgs::default();
    let parser = syn::meta::parser(|meta| args.parse(&meta));
    syn::parse::Parser::parse(parser, attr)?;
    let Some(name) = args.name.clone() else {
        return Err(syn::Error::new(
            Span::call_site(),
            "#[plugin] needs a name: #[plugin(name = \"my-plugin\")]",
        ));
    };
    Ok((name, args.defaults()))
}

/// The arguments of `#[plugin(..)]`: the name, and the plugin's defaults for the engine's
/// settings as the `Defaults` builder calls they become.
#[derive(Default)]
struct PluginArgs {
    name: Option<LitStr>,
    defaults: Vec<proc_macro2::TokenStream>,
}

impl PluginArgs {
    fn parse(&mut self, meta: &syn::meta::ParseNestedMeta<'_>) -> syn::Result<()> {
        let key = meta.path.get_ident().map(ToString::to_string);
        let call = match key.as_deref() {
            Some("name") => {
                self.name = Some(meta.value()?.parse()?);
                return Ok(());
            }
            Some("on_error") => on_error_default(&meta.value()?.parse()?)?,
            Some("order") => order_default(&meta.value()?.parse()?)?,
            Some("timeout") => timeout_default(&meta.value()?.parse()?)?,
            Some("enabled") => {
                let enabled: syn::LitBool = meta.value()?.parse()?;
                quote!(.enabled(#enabled))
            }
            _ => {
                return Err(meta.error(
                    "unknown argument; #[plugin] takes `name = \"...\"` and the defaults \
                     `on_error`, `order`, `timeout`, `enabled`",
                ));
            }
        };
        self.defaults.push(call);
        Ok(())
    }

    /// The registration's `__with_defaults(..)` call, or nothing when there are none.
    fn defaults(&self) -> proc_macro2::TokenStream {
        if self.defaults.is_empty() {
            return quote!();
        }
        let calls = &self.defaults;
        quote!(.__with_defaults(::mq_plugin_api::Defaults::NONE #(#calls)*))
    }
}

/// `on_error = "tempfail" | "reject" | "skip"`.
fn on_error_default(value: &LitStr) -> syn::Result<proc_macro2::TokenStream> {
    let variant = match value.value().as_str() {
        "tempfail" => "Tempfail",
        "reject" => "Reject",
        "skip" => "Skip",
        _ => {
            return Err(syn::Error::new(
                value.span(),
                "on_error is \"tempfail\", \"reject\" or \"skip\"",
            ));
        }
    };
    let variant = syn::Ident::new(variant, value.span());
    Ok(quote!(.on_error(::mq_plugin_api::FailurePolicy::#variant)))
}

/// `order = "first" | "last" | INTEGER` (a negative one too).
fn order_default(value: &syn::Expr) -> syn::Result<proc_macro2::TokenStream> {
    let wrong = || {
        syn::Error::new(
            value.span(),
            "order is \"first\", \"last\" or an integer such as 10 or -10",
        )
    };
    let (negative, literal) = match value {
        syn::Expr::Unary(syn::ExprUnary {
            op: syn::UnOp::Neg(_),
            expr,
            ..
        }) => (true, &**expr),
        other => (false, other),
    };
    let syn::Expr::Lit(syn::ExprLit { lit, .. }) = literal else {
        return Err(wrong());
    };
    match lit {
        syn::Lit::Str(text) if !negative && text.value() == "first" => {
            Ok(quote!(.order(::mq_plugin_api::Order::First)))
        }
        syn::Lit::Str(text) if !negative && text.value() == "last" => {
            Ok(quote!(.order(::mq_plugin_api::Order::Last)))
        }
        syn::Lit::Int(number) => {
            let magnitude: i64 = number.base10_parse()?;
            let at = i32::try_from(if negative { -magnitude } else { magnitude })
                .map_err(|_| syn::Error::new(number.span(), "order is a 32-bit integer"))?;
            Ok(quote!(.order(::mq_plugin_api::Order::At(#at))))
        }
        _ => Err(wrong()),
    }
}

/// `timeout = "250ms" | "10s" | "2m" | "1h"`, turned into milliseconds here so that the
/// registration stays a constant.
fn timeout_default(value: &LitStr) -> syn::Result<proc_macro2::TokenStream> {
    let text = value.value();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let scale: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => 0,
    };
    let millis = number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .filter(|&millis| millis > 0 && u32::try_from(millis).is_ok())
        .ok_or_else(|| {
            syn::Error::new(
                value.span(),
                "timeout is a duration above zero such as \"250ms\", \"10s\", \"2m\" or \"1h\"",
            )
        })?;
    Ok(quote!(.timeout(::core::time::Duration::from_millis(#millis))))
}

fn expand_plugin(
    name: &LitStr,
    item: &ItemImpl,
    defaults: &proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let value = name.value();
    let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
    if value.is_empty() || !value.chars().all(valid) {
        return Err(syn::Error::new(
            name.span(),
            "a plugin name is lowercase letters, digits, `-` and `_`",
        ));
    }
    if item.trait_.is_some() {
        return Err(syn::Error::new(
            item.span(),
            "#[plugin] goes on the inherent `impl` block that holds `fn new`",
        ));
    }
    if !item.generics.params.is_empty() {
        return Err(syn::Error::new(
            item.generics.span(),
            "a registered plugin type cannot be generic",
        ));
    }
    let constructor = item
        .items
        .iter()
        .find_map(|member| match member {
            ImplItem::Fn(method) if method.sig.ident == "new" => Some(method),
            _ => None,
        })
        .ok_or_else(|| {
            syn::Error::new(
                item.self_ty.span(),
                "#[plugin] needs a `fn new` in this block",
            )
        })?;
    let self_ty = &item.self_ty;
    let build = build_call(self_ty, &constructor.sig)?;
    Ok(quote! {
        #item

        impl ::mq_plugin_api::Named for #self_ty {
            const NAME: &'static str = #name;
        }

        const _: () = {
            fn __mq_factory(
                config: &::mq_plugin_api::PluginConfig,
            ) -> ::core::result::Result<::std::boxed::Box<dyn ::mq_plugin_api::Plugin>, ::mq_plugin_api::ConfigError> {
                let plugin: #self_ty = #build;
                ::core::result::Result::Ok(::std::boxed::Box::new(plugin))
            }

            ::mq_plugin_api::__private::inventory::submit! {
                ::mq_plugin_api::Registration::__new(
                    #name,
                    <#self_ty as ::mq_plugin_api::PluginHooks>::HOOKS,
                    ::core::module_path!(),
                    __mq_factory,
                )
                #defaults
                .__with_observers(<#self_ty as ::mq_plugin_api::PluginHooks>::OBSERVES)
            }
        };
    })
}

/// The expression that calls `new` inside the factory, where `config` is the `&PluginConfig`.
fn build_call(self_ty: &Type, sig: &syn::Signature) -> syn::Result<proc_macro2::TokenStream> {
    let args: Vec<proc_macro2::TokenStream> = sig
        .inputs
        .iter()
        .map(argument)
        .collect::<syn::Result<_>>()?;
    if args.len() > 2 {
        return Err(syn::Error::new(
            sig.inputs.span(),
            "`new` takes at most two arguments: its config type and `&PluginConfig`",
        ));
    }
    let call = quote!(<#self_ty>::new(#(#args),*));
    let fallible = matches!(&sig.output, ReturnType::Type(_, ty) if last_segment_is(ty, "Result"));
    let call = if fallible {
        quote!(#call.map_err(|error| ::mq_plugin_api::ConfigError::new(config.name(), error))?)
    } else {
        call
    };
    Ok(call)
}

/// What the factory passes for one argument of `new`: the raw `&PluginConfig`, or the section
/// parsed into the argument's type (by reference or by value).
fn argument(input: &FnArg) -> syn::Result<proc_macro2::TokenStream> {
    let FnArg::Typed(arg) = input else {
        return Err(syn::Error::new(
            input.span(),
            "`new` is a constructor: no `self`",
        ));
    };
    Ok(match &*arg.ty {
        Type::Reference(reference) if last_segment_is(&reference.elem, "PluginConfig") => {
            quote!(config)
        }
        Type::Reference(reference) => {
            let ty = &reference.elem;
            quote!(&config.parse::<#ty>()?)
        }
        ty => quote!(config.parse::<#ty>()?),
    })
}

fn last_segment_is(ty: &Type, ident: &str) -> bool {
    matches!(ty, Type::Path(path) if path.path.segments.last().is_some_and(|s| s.ident == ident))
}
