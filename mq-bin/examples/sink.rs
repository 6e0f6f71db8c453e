//! A counting SMTP sink for the relay benchmark (`SINK=mq bench/relay.sh`): it takes every
//! message and keeps nothing, reading a connection in blocks of 256 KiB and finding the end of
//! the data with one search per block, so that what it costs per message stays small beside
//! the MTA it measures (Postfix's smtp-sink reads and parses every line). It offers PIPELINING
//! and 8BITMIME and prints `mesg=N`, the messages received so far, as `smtp-sink -c` does.
//!
//! ```text
//! cargo run --release -p mq-bin --example sink -- 127.0.0.1:2525
//! ```

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

const BLOCK: usize = 256 * 1024;
const END_OF_DATA: &[u8] = b"\r\n.\r\n";

fn main() -> io::Result<()> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:2525".into());
    let listener = TcpListener::bind(&address)?;
    let received = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&received);
    thread::spawn(move || report(&counted));
    for stream in listener.incoming() {
        let received = Arc::clone(&received);
        let Ok(stream) = stream else { continue };
        thread::spawn(move || {
            if let Err(error) = serve(stream, &received) {
                eprintln!("sink: {error}");
            }
        });
    }
    Ok(())
}

/// Prints the count each time it changed, ten times a second at most.
fn report(received: &AtomicU64) {
    let mut shown = 0;
    loop {
        thread::sleep(Duration::from_millis(100));
        let now = received.load(Ordering::Relaxed);
        if now != shown {
            shown = now;
            let mut out = io::stdout().lock();
            let _ = writeln!(out, "mesg={now}");
            let _ = out.flush();
        }
    }
}

/// One session: replies are gathered while commands are buffered, and written before the next
/// read, so a pipelined batch gets its replies in one write.
fn serve(mut stream: TcpStream, received: &AtomicU64) -> io::Result<()> {
    stream.set_nodelay(true)?;
    stream.write_all(b"220 sink ESMTP\r\n")?;
    let mut input = vec![0; BLOCK];
    let (mut start, mut end) = (0, 0);
    let mut replies = Vec::new();
    // In DATA: `Some(fresh)`, `fresh` until a byte of the message was looked at (the end
    // marker's CRLF is then the one that ended the DATA command).
    let mut data: Option<bool> = None;
    loop {
        let buffered = &input[start..end];
        if let Some(fresh) = data {
            let found = if fresh && buffered.starts_with(&END_OF_DATA[2..]) {
                Some(END_OF_DATA.len() - 2)
            } else if fresh && buffered.len() < 3 {
                None
            } else {
                memchr::memmem::find(buffered, END_OF_DATA).map(|at| at + END_OF_DATA.len())
            };
            match found {
                Some(used) => {
                    start += used;
                    data = None;
                    received.fetch_add(1, Ordering::Relaxed);
                    replies.extend_from_slice(b"250 2.0.0 Ok: queued\r\n");
                    continue;
                }
                None if buffered.len() >= 3 => {
                    // Only the last bytes can begin an end marker the next read completes.
                    let keep = buffered.len().min(END_OF_DATA.len() - 1);
                    input.copy_within(end - keep..end, 0);
                    (start, end) = (0, keep);
                    data = Some(false);
                }
                None => {}
            }
        } else if let Some(line_end) = memchr::memchr(b'\n', buffered) {
            let verb = buffered[..line_end.min(4)].to_ascii_uppercase();
            start += line_end + 1;
            match &verb[..] {
                b"EHLO" => {
                    replies.extend_from_slice(b"250-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
                }
                b"HELO" | b"MAIL" | b"RCPT" | b"RSET" | b"NOOP" => {
                    replies.extend_from_slice(b"250 2.0.0 Ok\r\n");
                }
                b"DATA" => {
                    replies.extend_from_slice(b"354 End data with <CR><LF>.<CR><LF>\r\n");
                    data = Some(true);
                }
                b"QUIT" => {
                    replies.extend_from_slice(b"221 2.0.0 Bye\r\n");
                    return stream.write_all(&replies);
                }
                _ => replies.extend_from_slice(b"502 5.5.2 Error: command not recognized\r\n"),
            }
            continue;
        }
        // Nothing more to do with what is buffered: answer, then read.
        if !replies.is_empty() {
            stream.write_all(&replies)?;
            replies.clear();
        }
        if start == end {
            (start, end) = (0, 0);
        } else if end == input.len() {
            if start == 0 {
                return Err(io::Error::other("a command line longer than the buffer"));
            }
            input.copy_within(start..end, 0);
            (start, end) = (0, end - start);
        }
        match stream.read(&mut input[end..])? {
            0 => return Ok(()),
            read => end += read,
        }
    }
}
