//! The admin port's queue surgery: delete, hold, release and requeue of one message or many,
//! and flushing one message or one destination domain.
//!
//! | route | answer |
//! | --- | --- |
//! | `POST /queue/<change>/<ID>` | the message's entry count; 404 if it is not queued |
//! | `POST /queue/<change>?ids=<ID>,<ID>,…` | one JSON line per id: `{"queue_id", "entries"}` or `{"queue_id", "error"}` |
//! | `POST /queue/<change>?ids=ALL` | the same, for every queued message |
//! | `POST /queue/flush/<ID>` | how many deferred entries of the message are due now |
//! | `POST /queue/flush?domain=<D>` | how many deferred entries to domain D are due now |
//!
//! `<change>` is `hold`, `release`, `requeue` or `delete` (`POST /queue/delete/<ID>` is the
//! admin port's older route and answers as before).

use super::http::{Request, Response, internal};
use crate::queue::{Queue, QueueError, QueueId, Surgery, all_messages};

/// The answer to `request` if it is one of these routes; `segments` is its path, split.
pub(crate) async fn route(
    request: &Request,
    segments: &[&str],
    queue: &dyn Queue,
) -> Option<Response> {
    if request.method != "POST" {
        return None;
    }
    let response = match segments {
        ["queue", "flush"] => flush_domain(queue, &query(request, "domain")?),
        ["queue", "flush", id] => match id.parse::<QueueId>() {
            Ok(id) => flush_message(queue, id),
            Err(error) => Response::text(400, format!("{error}\n")),
        },
        ["queue", change] => {
            let change = change.parse::<Surgery>().ok()?;
            match query(request, "ids") {
                Some(ids) => many(queue, change, &ids).await,
                None => Response::text(400, "ids= names no messages\n"),
            }
        }
        ["queue", change, id] if *change != "delete" => {
            let change = change.parse::<Surgery>().ok()?;
            match id.parse::<QueueId>() {
                Ok(id) => one(queue, change, id).await,
                Err(error) => Response::text(400, format!("{error}\n")),
            }
        }
        _ => return None,
    };
    Some(response)
}

/// The value of `name` in the request's query, percent-decoded.
fn query(request: &Request, name: &str) -> Option<String> {
    let (_, query) = request.path.split_once('?')?;
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| percent_decoded(value))
}

/// `%XX` escapes decoded; a malformed escape stays as it is.
fn percent_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn one(queue: &dyn Queue, change: Surgery, id: QueueId) -> Response {
    match change.apply(queue, &id).await {
        Ok(entries) => {
            tracing::info!(queue_id = %id, entries, "message {change} through the admin port");
            Response::text(200, format!("{entries}\n"))
        }
        Err(QueueError::NotFound(_)) => {
            Response::text(404, format!("{}\n", QueueError::NotFound(id)))
        }
        Err(error) => internal(&format!("cannot {change} the message"), &error),
    }
}

/// `ids` (comma-separated, or `ALL`), changed together.
async fn many(queue: &dyn Queue, change: Surgery, ids: &str) -> Response {
    let ids: Vec<QueueId> = if ids == "ALL" {
        all_messages(queue)
    } else {
        let parsed: Result<Vec<QueueId>, _> = ids
            .split(',')
            .filter(|id| !id.is_empty())
            .map(str::parse)
            .collect();
        match parsed {
            Ok(ids) => ids,
            Err(error) => return Response::text(400, format!("{error}\n")),
        }
    };
    let mut lines = String::new();
    let mut changed = 0;
    for (id, outcome) in change.apply_all(queue, &ids).await {
        let line = match outcome {
            Ok(entries) => {
                changed += 1;
                serde_json::json!({ "queue_id": id.to_string(), "entries": entries })
            }
            Err(error) => {
                serde_json::json!({ "queue_id": id.to_string(), "error": error.to_string() })
            }
        };
        lines.push_str(&line.to_string());
        lines.push('\n');
    }
    tracing::info!(messages = changed, "queue {change} through the admin port");
    Response {
        status: 200,
        content_type: "application/x-ndjson",
        body: lines.into_bytes(),
    }
}

fn flush_message(queue: &dyn Queue, id: QueueId) -> Response {
    if !queue.list().iter().any(|e| e.queue_id == id) {
        return Response::text(404, format!("{}\n", QueueError::NotFound(id)));
    }
    let flushed = queue.flush_where(&|queued, _| queued == id);
    tracing::info!(queue_id = %id, flushed, "message flushed through the admin port");
    Response::text(200, format!("{flushed}\n"))
}

fn flush_domain(queue: &dyn Queue, domain: &str) -> Response {
    let flushed = queue.flush_where(&|_, recipient| recipient.domain_is(domain));
    tracing::info!(%domain, flushed, "domain flushed through the admin port");
    Response::text(200, format!("{flushed}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_decoded_and_bad_ones_kept() {
        assert_eq!(percent_decoded("a%2Eb%zz%4"), "a.b%zz%4");
        assert_eq!(percent_decoded("j%C3%B6s.test"), "jös.test");
    }
}
