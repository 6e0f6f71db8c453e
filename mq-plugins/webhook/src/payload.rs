//! One `delivery_result` as the JSON body the webhook receives, and the RFC 3339 time in it.

use std::time::{SystemTime, UNIX_EPOCH};

use mq_plugin_api::{DeliveryResult, DeliveryState};
use serde::Serialize;

/// The body's fields, in the order they are written.
#[derive(Serialize)]
struct Payload<'a> {
    queue_id: &'a str,
    attempt: u32,
    /// `delivered`, `deferred` or `failed`.
    state: &'static str,
    /// Seconds until the next attempt when deferred, else null.
    retry_in_seconds: Option<u64>,
    /// The envelope sender, `""` for the null reverse path.
    sender: &'a str,
    recipient: &'a str,
    /// The remote server's final reply (`550 5.1.1 text`), null when it did not answer.
    remote_reply: Option<String>,
    /// When the hook ran, RFC 3339 in UTC with milliseconds.
    time: String,
}

/// The JSON body for `event`, stamped with `now`.
pub(crate) fn to_json(event: &DeliveryResult, now: SystemTime) -> Vec<u8> {
    let (state, retry_in_seconds) = match event.state {
        DeliveryState::Delivered => ("delivered", None),
        DeliveryState::Deferred(delay) => ("deferred", Some(delay.as_secs())),
        DeliveryState::Failed => ("failed", None),
        // A state added to the API later: sent, so the receiver sees it, under a neutral name.
        _ => ("other", None),
    };
    let payload = Payload {
        queue_id: event.queue_id(),
        attempt: event.attempt(),
        state,
        retry_in_seconds,
        sender: event.sender().as_str(),
        recipient: event.recipient().as_str(),
        remote_reply: event.remote_reply().map(ToString::to_string),
        time: rfc3339(now),
    };
    // Strings, integers and options under string keys: serialising into memory cannot fail.
    serde_json::to_vec(&payload).unwrap_or_default()
}

/// `now` as `YYYY-MM-DDTHH:MM:SS.mmmZ`; a time before 1970 is written as 1970.
fn rfc3339(now: SystemTime) -> String {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (days, seconds) = (since.as_secs() / 86_400, since.as_secs() % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60,
        since.subsec_millis()
    )
}

/// The proleptic Gregorian date `days` after 1970-01-01 (Howard Hinnant's `civil_from_days`,
/// for non-negative days: eras of 400 years starting on March 1st).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mq_plugin_api::{Address, Reply};

    use super::*;

    fn at(seconds: u64, millis: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(seconds) + Duration::from_millis(millis)
    }

    fn event(state: DeliveryState, reply: Option<Reply>) -> DeliveryResult {
        let envelope = (Address::null(), "b@example.net".parse().unwrap());
        DeliveryResult::new("Q1", 2, envelope, reply, state)
    }

    fn json(event: &DeliveryResult) -> serde_json::Value {
        serde_json::from_slice(&to_json(event, at(0, 0))).unwrap()
    }

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339(at(0, 0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(at(951_782_400, 5)), "2000-02-29T00:00:00.005Z");
        assert_eq!(rfc3339(at(1_709_251_199, 999)), "2024-02-29T23:59:59.999Z");
        assert_eq!(rfc3339(at(4_102_444_800, 0)), "2100-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_secs(1)),
            "1970-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn each_state_has_its_name_and_only_deferred_a_delay() {
        let deferred = json(&event(
            DeliveryState::Deferred(Duration::from_mins(10)),
            None,
        ));
        assert_eq!(
            (&deferred["state"], &deferred["retry_in_seconds"]),
            (&"deferred".into(), &600.into())
        );
        let delivered = json(&event(DeliveryState::Delivered, None));
        assert_eq!(delivered["state"], "delivered");
        assert!(delivered["retry_in_seconds"].is_null());
        assert_eq!(json(&event(DeliveryState::Failed, None))["state"], "failed");
    }

    #[test]
    fn the_null_sender_is_empty_and_a_missing_reply_is_null() {
        let body = json(&event(DeliveryState::Delivered, None));
        assert_eq!(body["sender"], "");
        assert!(body["remote_reply"].is_null());
        let reply = Reply::new(550, "5.1.1", "no \"such\" user");
        let body = json(&event(DeliveryState::Failed, Some(reply)));
        assert_eq!(body["remote_reply"], "550 5.1.1 no \"such\" user");
    }
}
