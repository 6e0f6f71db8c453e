//! The SMTP reply a hook sets to reject a step.

use std::fmt;

/// An SMTP reply: a three-digit code, an optional enhanced status code (RFC 3463) and text.
///
/// A hook rejects its step by setting a `Reply` on its event (`event.reject(reply)`); the engine
/// then ends the chain and the server sends the reply. A 4xx reply fails the step temporarily, a
/// 5xx one permanently.
///
/// # Examples
///
/// ```
/// use mq_plugin_api::Reply;
///
/// let reply = Reply::new(451, "4.7.1", "one line\r\n250 not another");
/// assert_eq!(reply.text(), "one line  250 not another");
///
/// let reply = Reply::new(554, "5.7.1", "Relay access denied");
/// assert_eq!(reply.to_string(), "554 5.7.1 Relay access denied");
/// assert!(reply.is_permanent());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reply {
    code: u16,
    enhanced: Option<Box<str>>,
    text: Box<str>,
}

impl Reply {
    /// A reply with an enhanced status code; pass `""` for none. Control characters in the
    /// text become spaces: a reply cannot end early or smuggle a second one.
    ///
    /// A code outside 200..=599 is kept as given; the server answers such a reply with
    /// `451 4.3.0` instead of sending it (see the server's docs).
    ///
    /// # Examples
    ///
    /// ```
    /// let reply = mq_plugin_api::Reply::new(451, "", "try again later");
    /// assert_eq!(reply.enhanced(), None);
    /// ```
    pub fn new(code: u16, enhanced: &str, text: impl Into<String>) -> Reply {
        let enhanced = (!enhanced.is_empty()).then(|| clean(enhanced.to_owned()).into());
        Reply {
            code,
            enhanced,
            text: clean(text.into()).into_boxed_str(),
        }
    }

    /// `451 4.3.0` with the given text: the reply for a temporary local problem.
    ///
    /// # Examples
    ///
    /// ```
    /// let reply = mq_plugin_api::Reply::tempfail("Error: queue file write error");
    /// assert_eq!(reply.code(), 451);
    /// ```
    pub fn tempfail(text: impl Into<String>) -> Reply {
        Reply::new(451, "4.3.0", text)
    }

    /// The three-digit reply code.
    pub fn code(&self) -> u16 {
        self.code
    }

    /// The enhanced status code, such as `5.7.1`, if there is one.
    pub fn enhanced(&self) -> Option<&str> {
        self.enhanced.as_deref()
    }

    /// The reply's text, without code or enhanced code.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the code is 4xx: the client may try again later.
    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    /// Whether the code is 5xx: the client must not try again as is.
    pub fn is_permanent(&self) -> bool {
        (500..600).contains(&self.code)
    }
}

/// The text with control characters (CR and LF above all) made spaces, so that a reply is one
/// line on the wire whatever a plugin put in it.
fn clean(text: String) -> String {
    // Printable ASCII, what nearly every reply is, needs no new string.
    if text.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return text;
    }
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.enhanced {
            Some(enhanced) => write!(f, "{} {} {}", self.code, enhanced, self.text),
            None => write!(f, "{} {}", self.code, self.text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Reply;

    #[test]
    fn control_characters_become_spaces_and_other_text_is_kept() {
        let cases = [
            ("Ok: queued as 0123", "Ok: queued as 0123"),
            ("tab\there", "tab here"),
            ("bell\u{7}del\u{7f}", "bell del "),
            ("C1\u{85}next line", "C1 next line"),
            ("déjà vu ✓", "déjà vu ✓"),
            ("", ""),
        ];
        for (text, clean) in cases {
            assert_eq!(Reply::new(250, "", text).text(), clean, "{text:?}");
        }
        assert_eq!(Reply::new(451, "4.\n3.0", "x").enhanced(), Some("4. 3.0"));
    }
}
