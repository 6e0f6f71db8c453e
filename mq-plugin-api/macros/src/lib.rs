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
    if !attr.is_empty() {
        let attr = proc_macro2::TokenStream::from(attr);
        return syn::Error::new(attr.span(), "#[hooks] takes no arguments")
            .to_compile_error()
            .into();
    }
    let item = parse_macro_input!(item as ItemImpl);
    match expand_hooks(&item) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

fn expand_hooks(item: &ItemImpl) -> syn::Result<proc_macro2::TokenStream> {
    let Some((_, trait_path, _)) = &item.trait_ else {
        return Err(syn::Error::new(
            item.self_ty.span(),
            "#[hooks] goes on an `impl Plugin for T` block",
        ));
    };
    let mut item = item.clone();
    let mut variants = Vec::new();
    let mut observed = Vec::new();
    for member in &mut item.items {
        let ImplItem::Fn(method) = member else {
            continue;
        };
        let observer = take_observe_marker(method)?;
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
        let variant = syn::Ident::new(variant, method.sig.ident.span());
        if observer {
            check_observer(&method.sig)?;
            let ident = &method.sig.ident;
            method.sig.ident = syn::Ident::new(&format!("observe_{ident}"), ident.span());
            observed.push(quote!(.with(::mq_plugin_api::HookId::#variant)));
        } else {
            variants.push(quote!(.with(::mq_plugin_api::HookId::#variant)));
        }
    }
    let self_ty = &item.self_ty;
    let (impl_generics, _, where_clause) = item.generics.split_for_impl();
    let span = trait_path.span();
    Ok(quote_spanned! {span=>
        #[::mq_plugin_api::__private::async_trait(?Send)]
        #item

        impl #impl_generics ::mq_plugin_api::PluginHooks for #self_ty #where_clause {
            const HOOKS: ::mq_plugin_api::HookSet = ::mq_plugin_api::HookSet::EMPTY #(#variants)*;
            const OBSERVES: ::mq_plugin_api::HookSet = ::mq_plugin_api::HookSet::EMPTY #(#observed)*;
        }
    })
}

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
#[proc_macro_attribute]
pub fn plugin(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut name: Option<LitStr> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            name = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            Err(meta.error("unknown argument; #[plugin] takes `name = \"...\"`"))
        }
    });
    parse_macro_input!(attr with parser);
    let item = parse_macro_input!(item as ItemImpl);
    let Some(name) = name else {
        return syn::Error::new(
            Span::call_site(),
            "#[plugin] needs a name: #[plugin(name = \"my-plugin\")]",
        )
        .to_compile_error()
        .into();
    };
    match expand_plugin(&name, &item) {
        Ok(tokens) => tokens.into(),
        Err(error) => error.to_compile_error().into(),
    }
}

fn expand_plugin(name: &LitStr, item: &ItemImpl) -> syn::Result<proc_macro2::TokenStream> {
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
