//! [`QueueRecord`]: one queue entry as the admin port sends it, a line of JSON.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::queue::{Entry, EntryState};
use crate::smtp::{Notify, Ret};

/// One queued entry (a message to one recipient) as `GET /queue` sends it: one JSON object per
/// line, times in whole seconds since the Unix epoch.
///
/// `mq queue` reads these from a running server, and builds the same from the queue on disk
/// when no server runs, so that both print alike.
///
/// # Examples
///
/// ```
/// use mq_core::admin::QueueRecord;
///
/// let line = r#"{"queue_id":"0006123456789ABC","recipient_index":0,"sender":"a@example.org",
///     "recipient":"b@example.net","size":120,"arrived":1700000000,"attempts":0,
///     "next_attempt":1700000000,"last_error":null,"state":"ready"}"#;
/// let record: QueueRecord = serde_json::from_str(line).unwrap();
/// assert_eq!(record.recipient, "b@example.net");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct QueueRecord {
    /// The message's queue id, 16 hex digits.
    pub queue_id: String,
    /// Which recipient of the message this entry is.
    pub recipient_index: u32,
    /// The envelope sender; `<>` for the null path.
    pub sender: String,
    /// This entry's recipient.
    pub recipient: String,
    /// The message's size in bytes.
    pub size: u64,
    /// When the message was queued, in seconds since the epoch.
    pub arrived: u64,
    /// Delivery attempts deferred so far.
    pub attempts: u32,
    /// When the entry is due, in seconds since the epoch.
    pub next_attempt: u64,
    /// Why the last attempt was deferred.
    pub last_error: Option<String>,
    /// `ready`, `deferred`, `in-flight` or `hold` (its message is on hold).
    pub state: String,
    /// The message came with SMTPUTF8 (RFC 6531); left out when it did not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub smtputf8: bool,
    /// The message's `RET` (RFC 3461): `FULL` or `HDRS`; left out when it had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ret: Option<String>,
    /// The message's `ENVID`, decoded; left out when it had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envid: Option<String>,
    /// This recipient's `NOTIFY`, e.g. `SUCCESS,FAILURE` or `NEVER`; left out when it had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<String>,
    /// This recipient's `ORCPT`, `type;address` as given; left out when it had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub orcpt: Option<String>,
}

impl From<&Entry> for QueueRecord {
    fn from(entry: &Entry) -> QueueRecord {
        let extensions = entry.extensions.as_deref();
        let recipient = extensions.map(|e| e.recipient(entry.recipient_index));
        let recipient = recipient.unwrap_or_default();
        QueueRecord {
            queue_id: entry.queue_id.to_string(),
            recipient_index: entry.recipient_index,
            sender: entry.sender.to_string(),
            recipient: entry.recipient.to_string(),
            size: entry.size,
            arrived: unix_seconds(entry.arrived),
            attempts: entry.attempts,
            next_attempt: unix_seconds(entry.next_attempt),
            last_error: entry.last_error.clone(),
            state: state_name(entry.state).to_owned(),
            smtputf8: extensions.is_some_and(|e| e.smtputf8),
            ret: extensions.and_then(|e| e.ret).map(|ret| {
                let name = if ret == Ret::Full { "FULL" } else { "HDRS" };
                name.to_owned()
            }),
            envid: extensions.and_then(|e| e.envid.clone()),
            notify: recipient.notify.map(Notify::to_param),
            orcpt: recipient.orcpt,
        }
    }
}

/// The name `mq queue` shows for a state.
fn state_name(state: EntryState) -> &'static str {
    match state {
        EntryState::Ready => "ready",
        EntryState::Deferred => "deferred",
        EntryState::InFlight => "in-flight",
        EntryState::Held => "hold",
    }
}

/// Seconds since the epoch; a time before it (a clock far off) counts as the epoch.
pub(crate) fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn times_before_the_epoch_are_the_epoch() {
        assert_eq!(unix_seconds(UNIX_EPOCH - Duration::from_secs(5)), 0);
        assert_eq!(unix_seconds(UNIX_EPOCH + Duration::from_millis(2_500)), 2);
    }

    #[test]
    fn a_record_survives_a_json_round_trip() {
        let record = QueueRecord {
            queue_id: "0006123456789ABC".into(),
            recipient_index: 1,
            sender: "<>".into(),
            recipient: "b@example.net".into(),
            size: 10,
            arrived: 1,
            attempts: 2,
            next_attempt: 3,
            last_error: Some("421 4.7.0 \"busy\"\ttry later".into()),
            state: "deferred".into(),
            smtputf8: true,
            ret: Some("HDRS".into()),
            envid: Some("QQ314159".into()),
            notify: Some("SUCCESS,FAILURE".into()),
            orcpt: Some("rfc822;b@example.net".into()),
        };
        let line = serde_json::to_string(&record).unwrap();
        assert!(!line.contains('\n'));
        assert_eq!(serde_json::from_str::<QueueRecord>(&line).unwrap(), record);
    }
}
