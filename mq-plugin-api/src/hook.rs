//! The hooks: their names, sets of them, and the tie between an event type and its hook.

use std::fmt;

macro_rules! hooks {
    ($($variant:ident = $name:literal,)*) => {
        /// One step at which the engine runs a chain of plugins.
        ///
        /// Each hook is a method of [`Plugin`](crate::Plugin) of the same name, and has an event
        /// type (see [`Event`](crate::Event)).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum HookId {
            $(
                #[doc = concat!("`", $name, "`")]
                $variant,
            )*
        }

        impl HookId {
            /// Every hook, in the order a message meets them.
            pub const ALL: [HookId; HookId::COUNT] = [$(HookId::$variant),*];
            /// How many hooks there are.
            pub const COUNT: usize = [$(HookId::$variant),*].len();

            /// The hook's name, which is also its method's name.
            ///
            /// # Examples
            ///
            /// ```
            /// assert_eq!(mq_plugin_api::HookId::SmtpInData.name(), "smtp_in_data");
            /// ```
            pub const fn name(self) -> &'static str {
                match self {
                    $(HookId::$variant => $name,)*
                }
            }

            /// The hook of that name.
            ///
            /// # Examples
            ///
            /// ```
            /// use mq_plugin_api::HookId;
            /// assert_eq!(HookId::from_name("queue_pickup"), Some(HookId::QueuePickup));
            /// assert_eq!(HookId::from_name("on_data"), None);
            /// ```
            pub fn from_name(name: &str) -> Option<HookId> {
                match name {
                    $($name => Some(HookId::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

hooks! {
    SmtpInConnect = "smtp_in_connect",
    SmtpInHelo = "smtp_in_helo",
    SmtpInSecure = "smtp_in_secure",
    SmtpInAuthenticate = "smtp_in_authenticate",
    SmtpInMailFrom = "smtp_in_mail_from",
    SmtpInRcptTo = "smtp_in_rcpt_to",
    SmtpInData = "smtp_in_data",
    SmtpInMessage = "smtp_in_message",
    SmtpInClose = "smtp_in_close",
    QueuePickup = "queue_pickup",
    SmtpOutConnect = "smtp_out_connect",
    SmtpOutMailFrom = "smtp_out_mail_from",
    SmtpOutRcptTo = "smtp_out_rcpt_to",
    SmtpOutData = "smtp_out_data",
    SmtpOutSent = "smtp_out_sent",
    DeliveryResult = "delivery_result",
}

impl HookId {
    /// The hook's position in [`HookId::ALL`], for tables indexed by hook.
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for HookId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of hooks: the ones a plugin implements.
///
/// The [`hooks`](crate::hooks) attribute builds it from the methods of a plugin's `impl Plugin`
/// block, so it cannot drift from the code.
///
/// # Examples
///
/// ```
/// use mq_plugin_api::{HookId, HookSet};
///
/// let set = HookSet::EMPTY.with(HookId::SmtpInData).with(HookId::SmtpInConnect);
/// assert!(set.contains(HookId::SmtpInData));
/// assert_eq!(set.iter().collect::<Vec<_>>(), [HookId::SmtpInConnect, HookId::SmtpInData]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct HookSet(u32);

impl HookSet {
    /// No hook at all.
    pub const EMPTY: HookSet = HookSet(0);

    /// This set and `hook`.
    #[must_use]
    pub const fn with(self, hook: HookId) -> HookSet {
        HookSet(self.0 | 1 << hook as u32)
    }

    /// Whether `hook` is in the set.
    pub const fn contains(self, hook: HookId) -> bool {
        self.0 & (1 << hook as u32) != 0
    }

    /// Whether the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The hooks in the set, in [`HookId::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = HookId> {
        HookId::ALL
            .into_iter()
            .filter(move |&hook| self.contains(hook))
    }
}

impl FromIterator<HookId> for HookSet {
    fn from_iter<I: IntoIterator<Item = HookId>>(iter: I) -> HookSet {
        iter.into_iter().fold(HookSet::EMPTY, HookSet::with)
    }
}
