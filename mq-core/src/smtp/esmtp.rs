//! The MAIL and RCPT parameters of SMTPUTF8 (RFC 6531) and DSN (RFC 3461): what the server
//! takes, each checked as Postfix checks it, and the reply for each one it refuses.

use std::fmt::Write as _;

use mq_plugin_api::{Address, Reply};

/// ENVID and ORCPT are at most 100 characters (RFC 3461 §4.2, §4.4).
const MAX_XTEXT: usize = 100;

/// When the sender wants a report (RFC 3461 §4.1): `NOTIFY=NEVER` or a list of the other three.
/// No NOTIFY is the default, which is `FAILURE` (and `DELAY` at the server's choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[allow(
    clippy::struct_excessive_bools,
    reason = "one flag per NOTIFY keyword, as RFC 3461 lists them"
)]
pub struct Notify {
    /// `NOTIFY=NEVER`: no report at all.
    pub never: bool,
    /// `SUCCESS`: a report when the message is delivered or relayed to a server without DSN.
    pub success: bool,
    /// `FAILURE`: a report when delivery fails for good.
    pub failure: bool,
    /// `DELAY`: a report when delivery is delayed.
    pub delay: bool,
}

impl Notify {
    const NEVER: u8 = 1;
    const SUCCESS: u8 = 2;
    const FAILURE: u8 = 4;
    const DELAY: u8 = 8;

    /// The flags as one byte, as the journal keeps them.
    pub fn to_bits(self) -> u8 {
        (u8::from(self.never) * Self::NEVER)
            | (u8::from(self.success) * Self::SUCCESS)
            | (u8::from(self.failure) * Self::FAILURE)
            | (u8::from(self.delay) * Self::DELAY)
    }

    /// The flags back from [`Notify::to_bits`].
    pub fn from_bits(bits: u8) -> Self {
        Notify {
            never: bits & Self::NEVER != 0,
            success: bits & Self::SUCCESS != 0,
            failure: bits & Self::FAILURE != 0,
            delay: bits & Self::DELAY != 0,
        }
    }

    /// The value as it goes on to the next server, e.g. `SUCCESS,FAILURE`.
    pub fn to_param(self) -> String {
        if self.never {
            return "NEVER".into();
        }
        let words = [
            (self.success, "SUCCESS"),
            (self.failure, "FAILURE"),
            (self.delay, "DELAY"),
        ];
        let kept: Vec<&str> = words
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, w)| *w)
            .collect();
        kept.join(",")
    }
}

/// What a failure report returns of the message (RFC 3461 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    /// `RET=FULL`: the whole message.
    Full,
    /// `RET=HDRS`: its header only.
    Hdrs,
}

/// The DSN parameters of one MAIL command.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailParams {
    /// `SMTPUTF8` was given: the envelope or the header may be UTF-8.
    pub smtputf8: bool,
    /// `RET`.
    pub ret: Option<Ret>,
    /// `ENVID`, decoded from xtext.
    pub envid: Option<String>,
}

/// The DSN parameters of one RCPT command.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RcptParams {
    /// `NOTIFY`; `None` when not given.
    pub notify: Option<Notify>,
    /// `ORCPT`, as given: `addr-type;xtext` (e.g. `rfc822;a+2Bb@example.org`).
    pub orcpt: Option<String>,
}

fn bad(name: &str) -> Reply {
    Reply::new(501, "5.5.4", format!("Error: Bad {name} parameter syntax"))
}

fn duplicate(name: &str) -> Reply {
    Reply::new(501, "5.5.4", format!("Error: duplicate {name} parameter"))
}

/// Takes the SMTPUTF8, RET and ENVID parameters out of `key=value`; `Ok(false)` when `key` is
/// none of them.
pub(crate) fn mail_param(
    params: &mut MailParams,
    key: &str,
    value: Option<&str>,
) -> Result<bool, Reply> {
    match (key, value) {
        ("SMTPUTF8", None) => params.smtputf8 = true,
        ("SMTPUTF8", Some(_)) => return Err(bad("SMTPUTF8")),
        ("RET", _) if params.ret.is_some() => return Err(duplicate("RET")),
        ("RET", Some(v)) if v.eq_ignore_ascii_case("FULL") => params.ret = Some(Ret::Full),
        ("RET", Some(v)) if v.eq_ignore_ascii_case("HDRS") => params.ret = Some(Ret::Hdrs),
        ("RET", _) => return Err(bad("RET")),
        ("ENVID", _) if params.envid.is_some() => return Err(duplicate("ENVID")),
        ("ENVID", Some(v)) => {
            params.envid = Some(xtext_decode(v).ok_or_else(|| bad("ENVID"))?);
        }
        ("ENVID", None) => return Err(bad("ENVID")),
        _ => return Ok(false),
    }
    Ok(true)
}

/// Takes the NOTIFY and ORCPT parameters out of `key=value`; `Ok(false)` when `key` is neither.
pub(crate) fn rcpt_param(
    params: &mut RcptParams,
    key: &str,
    value: Option<&str>,
) -> Result<bool, Reply> {
    match (key, value) {
        ("NOTIFY", _) if params.notify.is_some() => return Err(duplicate("NOTIFY")),
        ("NOTIFY", Some(v)) => params.notify = Some(notify(v).ok_or_else(|| bad("NOTIFY"))?),
        ("ORCPT", _) if params.orcpt.is_some() => return Err(duplicate("ORCPT")),
        ("ORCPT", Some(v)) => params.orcpt = Some(orcpt(v).ok_or_else(|| bad("ORCPT"))?),
        ("NOTIFY" | "ORCPT", None) => return Err(bad(key)),
        _ => return Ok(false),
    }
    Ok(true)
}

/// `NEVER` alone, or a list of `SUCCESS`, `FAILURE` and `DELAY`, each once.
fn notify(value: &str) -> Option<Notify> {
    let mut notify = Notify::default();
    for word in value.split(',') {
        let flag = match word.to_ascii_uppercase().as_str() {
            "NEVER" => &mut notify.never,
            "SUCCESS" => &mut notify.success,
            "FAILURE" => &mut notify.failure,
            "DELAY" => &mut notify.delay,
            _ => return None,
        };
        if *flag {
            return None;
        }
        *flag = true;
    }
    let others = notify.success || notify.failure || notify.delay;
    (!(notify.never && others)).then_some(notify)
}

/// `addr-type;xtext`, the type an atom and the xtext well formed; kept as given.
fn orcpt(value: &str) -> Option<String> {
    let (kind, address) = value.split_once(';')?;
    let atom = !kind.is_empty()
        && kind
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    (atom && xtext_decode(address).is_some_and(|a| !a.is_empty())).then(|| value.to_owned())
}

/// Decodes xtext (RFC 3461 §4): printable ASCII but `+` and `=`, and `+XX` for any byte, in
/// upper-case hex. `None` when it is not well formed, too long, or does not decode to
/// printable ASCII.
pub fn xtext_decode(text: &str) -> Option<String> {
    if text.len() > MAX_XTEXT {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(byte) = bytes.next() {
        let decoded = match byte {
            b'+' => {
                let hex = [bytes.next()?, bytes.next()?];
                let upper = hex
                    .iter()
                    .all(|h| h.is_ascii_digit() || (b'A'..=b'F').contains(h));
                if !upper {
                    return None;
                }
                u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?
            }
            b'!'..=b'~' if byte != b'=' => byte,
            _ => return None,
        };
        if !(b' '..=b'~').contains(&decoded) {
            return None;
        }
        out.push(char::from(decoded));
    }
    Some(out)
}

/// Encodes text as xtext: `+`, `=`, spaces and anything not printable ASCII as `+XX`.
pub fn xtext_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if (b'!'..=b'~').contains(&byte) && byte != b'+' && byte != b'=' {
            out.push(char::from(byte));
        } else {
            let _ = write!(out, "+{byte:02X}");
        }
    }
    out
}

/// Whether an address needs SMTPUTF8: its local part is not ASCII. A UTF-8 domain does not,
/// as mq keeps every domain in its ASCII form (IDNA), which any server takes.
pub fn needs_smtputf8(address: &Address) -> bool {
    !address.as_str().is_ascii()
}

/// The reply to a UTF-8 address given without SMTPUTF8 on MAIL, as Postfix words it.
pub(crate) fn smtputf8_required() -> Reply {
    Reply::new(
        553,
        "5.6.7",
        "Must declare SMTPUTF8 to send unicode address",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtext_round_trips_and_refuses_what_is_not_xtext() {
        assert_eq!(xtext_decode("a+2Bb+3Dc").as_deref(), Some("a+b=c"));
        assert_eq!(xtext_encode("a+b=c d"), "a+2Bb+3Dc+20d");
        for bad in [
            "a+2b",
            "a+2",
            "a=b",
            "a b",
            "+00",
            "\u{e9}",
            "x".repeat(101).as_str(),
        ] {
            assert_eq!(xtext_decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn notify_is_never_alone_or_a_list_without_repeats() {
        assert_eq!(notify("NEVER").map(Notify::to_bits), Some(1));
        let list = notify("success,Failure,DELAY").unwrap();
        assert_eq!(list.to_param(), "SUCCESS,FAILURE,DELAY");
        assert_eq!(Notify::from_bits(list.to_bits()), list);
        for bad in ["NEVER,SUCCESS", "SUCCESS,SUCCESS", "", "ALWAYS", "SUCCESS,"] {
            assert_eq!(notify(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn orcpt_needs_a_type_and_an_xtext_address() {
        assert!(orcpt("rfc822;a+2Bb@example.org").is_some());
        for bad in [
            "a@example.org",
            ";a@example.org",
            "rfc822;",
            "rfc 822;a@b",
            "rfc822;a=b",
        ] {
            assert_eq!(orcpt(bad), None, "{bad:?}");
        }
    }
}
