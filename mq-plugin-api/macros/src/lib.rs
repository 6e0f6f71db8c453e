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
/// hand-kept list.
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
    let mut refused = Vec::new();
    for member in std::mem::take(&mut item.items) {
        let ImplItem::Fn(method) = member else {
            item.items.push(member);
            continue;
        };
        match hook_of(&method) {
            Ok(variant) => {
                let variant = syn::Ident::new(variant, method.sig.ident.span());
                variants.push(quote!(.with(::mq_plugin_api::HookId::#variant)));
                item.items.push(ImplItem::Fn(method));
            }
            Err(error) => {
                errors.push(error);
                refused.push(method);
            }
        }
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
        }

        impl #impl_generics ::mq_plugin_api::Hooked for #self_ty #where_clause {}
    })
}

/// Put on the inherent `impl` block that holds a plugin's `fn new`: registers the plugin under
/// `name` through inventory, with a factory that parses the plugin's config section into the
/// type `new` takes. `new` takes nothing, its config type, `&PluginConfig` (the raw table and
/// `PluginConfig::shared` state), or its config type and then `&PluginConfig`.
#[proc_macro_attribute]
pub fn plugin(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = parse_macro_input!(item as ItemImpl);
    let expanded = plugin_name(attr).and_then(|name| expand_plugin(&name, &item));
    match expanded {
        Ok(tokens) => tokens.into(),
        Err(error) => refused(&error, &item).into(),
    }
}

/// The `name = "..."` argument of `#[plugin]`.
fn plugin_name(attr: TokenStream) -> syn::Result<LitStr> {
    let mut name: Option<LitStr> = None;
    let parser = syn::meta::parser(|meta| {
        if meta.path.is_ident("name") {
            name = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            Err(meta.error("unknown argument; #[plugin] takes `name = \"...\"`"))
        }
    });
    syn::parse::Parser::parse(parser, attr)?;
    name.ok_or_else(|| {
        syn::Error::new(
            Span::call_site(),
            "#[plugin] needs a name: #[plugin(name = \"my-plugin\")]",
        )
    })
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
