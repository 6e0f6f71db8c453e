//! Where and how mq logs: stderr, as text (`key=value` fields) or as one JSON object per line
//! (`--log-format json` or `[log] format = "json"`), filtered by `RUST_LOG`.
//!
//! A message's life is five to seven lines, so writing a line is on every message's path: the
//! text format is written here ([`Text`]) rather than by tracing-subscriber's own, which
//! formats the time anew for each line and escapes each value a character at a time. The lines
//! read the same.

use std::cell::RefCell;
use std::fmt::{self, Write as _};

use mq_core::service::LogFormat;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Logs to stderr, so that stdout carries only a command's output.
pub(crate) fn init(default: LevelFilter, format: LogFormat) {
    let filter = EnvFilter::builder()
        .with_default_directive(default.into())
        .from_env_lossy();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A custom build may have installed its own subscriber first; then that one stays.
    let _ = match format {
        LogFormat::Json => builder.event_format(Json).try_init(),
        // Colours only for a person at a terminal: log files and pipes get plain text, written
        // the fast way.
        _ if std::io::IsTerminal::is_terminal(&std::io::stderr()) => {
            builder.with_ansi(true).try_init()
        }
        _ => builder.with_ansi(false).event_format(Text).try_init(),
    };
}

/// tracing-subscriber's plain text layout, `2026-12-06T06:49:56.010074Z  INFO target: message
/// key=value …` (strings quoted, `%` fields as Display), written with less work per line: the
/// date and time to the second formatted once a second per thread, each value formatted once
/// and escaped only when it holds a control character.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Text;

thread_local! {
    /// The second last written, as `2026-12-06T06:49:56`, and the value being formatted.
    static SCRATCH: RefCell<(u64, String, String)> = const { RefCell::new((u64::MAX, String::new(), String::new())) };
}

impl<S, N> FormatEvent<S, N> for Text
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let metadata = event.metadata();
        SCRATCH.with_borrow_mut(|(second, stamp, value)| {
            if *second != now.as_secs() {
                *second = now.as_secs();
                let (year, month, day, hour, minute, sec, _) = crate::clock::civil(*second);
                stamp.clear();
                write!(
                    stamp,
                    "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{sec:02}"
                )?;
            }
            write!(
                writer,
                "{stamp}.{:06}Z {:>5} {}: ",
                now.subsec_micros(),
                metadata.level().as_str(),
                metadata.target()
            )?;
            let mut fields = TextFields {
                writer: &mut writer,
                value,
                first: true,
                result: Ok(()),
            };
            event.record(&mut fields);
            fields.result?;
            writer.write_char('\n')
        })
    }
}

/// Writes an event's fields as tracing-subscriber's default visitor does: the message first,
/// bare, then ` name=value`.
struct TextFields<'a, 'w> {
    writer: &'a mut Writer<'w>,
    /// Where a value is formatted before it is escaped.
    value: &'a mut String,
    first: bool,
    result: fmt::Result,
}

impl TextFields<'_, '_> {
    fn field(&mut self, field: &Field, value: fmt::Arguments<'_>) {
        if self.result.is_err() {
            return;
        }
        let name = field.name();
        if name.starts_with("log.") {
            return;
        }
        self.value.clear();
        self.result = self.value.write_fmt(value).and_then(|()| {
            let name = name.strip_prefix("r#").unwrap_or(name);
            if name == "message" {
                if !self.first {
                    self.writer.write_char(' ')?;
                }
            } else {
                let separator = if self.first { "" } else { " " };
                write!(self.writer, "{separator}{name}=")?;
            }
            self.first = false;
            write_escaped(self.writer, self.value)
        });
    }
}

impl Visit for TextFields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.field(field, format_args!("{value}"));
        } else {
            self.field(field, format_args!("{value:?}"));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.field(field, format_args!("{value}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.field(field, format_args!("{value:?}"));
    }
}

/// `value` with the control characters a terminal would act on written as escapes (ESC, BEL,
/// BS, FF, DEL and C1 as tracing-subscriber does; CR and LF too, so that a value never starts a
/// line of its own). Most values have none, and go out whole.
fn write_escaped(writer: &mut Writer<'_>, value: &str) -> fmt::Result {
    let plain = value
        .bytes()
        .all(|b| !matches!(b, 0x07 | 0x08 | 0x0a | 0x0c | 0x0d | 0x1b | 0x7f | 0xc2));
    if plain {
        return writer.write_str(value);
    }
    for ch in value.chars() {
        match ch {
            '\x07' | '\x08' | '\x0a' | '\x0c' | '\x0d' | '\x1b' | '\x7f' => {
                write!(writer, "\\x{:02x}", u32::from(ch))?;
            }
            '\u{80}'..='\u{9f}' => write!(writer, "\\u{{{:x}}}", u32::from(ch))?,
            _ => writer.write_char(ch)?,
        }
    }
    Ok(())
}

/// One JSON object per event: `timestamp` (RFC 3339, UTC), `level`, `target`, `message`, then
/// the event's fields by name; numbers and booleans stay JSON numbers and booleans.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Json;

impl<S, N> FormatEvent<S, N> for Json
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut timestamp = String::new();
        SystemTime.format_time(&mut Writer::new(&mut timestamp))?;
        let metadata = event.metadata();
        let mut object = Map::new();
        object.insert("timestamp".into(), timestamp.into());
        object.insert("level".into(), metadata.level().as_str().into());
        object.insert("target".into(), metadata.target().into());
        event.record(&mut Fields(&mut object));
        writeln!(writer, "{}", Value::Object(object))
    }
}

/// Collects an event's fields into a JSON object.
struct Fields<'a>(&'a mut Map<String, Value>);

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%value` fields arrive here too, and print as Display.
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a subscriber writing its lines with `format`, without colours, writes for the
    /// events `emit` sends.
    fn written<F>(format: F, emit: impl Fn()) -> String
    where
        F: FormatEvent<
                tracing_subscriber::Registry,
                tracing_subscriber::fmt::format::DefaultFields,
            > + Send
            + Sync
            + 'static,
    {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .event_format(format)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[derive(Clone, Default)]
    struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().write(bytes)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Lines as mq writes them: a queue id, a Display field, a quoted string, a number, an
    /// error, a message with arguments.
    fn events() {
        let id = "0006ABC";
        let error = std::io::Error::other("disk full");
        tracing::info!(queue_id = %id, nrcpt = 2_u64, "message-id" = "<a@b>", "message accepted");
        tracing::warn!(queue_id = %id, relay = "mx[127.0.0.1]:25", %error, "cannot queue the {}", "bounce");
        tracing::error!("no fields");
    }

    #[test]
    fn the_text_lines_read_as_tracing_subscribers_own() {
        let ours = written(Text, events);
        let theirs = written(tracing_subscriber::fmt::format(), events);
        // The same lines but for the time each was written.
        let after_time = |text: &str| -> Vec<String> {
            text.lines()
                .map(|line| line.split_once('Z').unwrap().1.to_owned())
                .collect()
        };
        assert_eq!(after_time(&ours), after_time(&theirs), "{ours}\n{theirs}");
        assert_eq!(ours.lines().count(), 3);
        let stamp = ours.lines().next().unwrap().split_once('Z').unwrap().0;
        assert_eq!(stamp.len(), "2026-12-06T06:49:56.010074".len(), "{stamp}");
        assert_eq!(&stamp[10..11], "T");
    }

    #[test]
    fn control_characters_in_a_value_are_escaped_and_a_value_never_breaks_the_line() {
        let text = written(Text, || {
            let helo = "evil\x1b[31m\r\nforged line\u{9b}";
            tracing::info!(helo = %helo, "connect");
        });
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.ends_with(" connect helo=evil\\x1b[31m\\x0d\\x0aforged line\\u{9b}\n"),
            "{text}"
        );
    }

    #[test]
    fn an_event_is_one_json_object_with_its_fields() {
        let text = written(Json, || {
            let id = "0006ABC";
            tracing::info!(queue_id = %id, nrcpt = 2_u64, "message-id" = "<a@b>", "message accepted");
        });
        let line: Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(line["message"], "message accepted");
        assert_eq!(line["queue_id"], "0006ABC");
        assert_eq!(line["nrcpt"], 2);
        assert_eq!(line["message-id"], "<a@b>");
        assert_eq!(line["level"], "INFO");
        assert!(line["timestamp"].as_str().unwrap().ends_with('Z'), "{line}");
    }
}
