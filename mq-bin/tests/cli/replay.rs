//! `[smtp] record` and `mq replay`: a session python's smtplib sent to a real `mq serve` is
//! recorded, and replays through the same build to the same replies.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::support::{PATIENCE, Scratch, bounded, one_error_line, stdout, success};

/// Sends one message with python's smtplib to `port`; false if there is no python3.
fn send_with_smtplib(port: u16) -> bool {
    let script = format!(
        "import smtplib\n\
         s = smtplib.SMTP('127.0.0.1', {port}, local_hostname='client.example', timeout=10)\n\
         s.sendmail('alice@example.org', ['bob@localhost'], \
         'From: alice@example.org\\r\\nSubject: recorded\\r\\n\\r\\n.hello\\r\\n')\n\
         s.quit()\n"
    );
    match Command::new("python3").args(["-c", &script]).output() {
        Ok(output) => {
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            true
        }
        Err(error) => {
            eprintln!("python3 cannot run ({error}): this test needs it; skipped");
            false
        }
    }
}

/// The one file in `dir`, once the session has ended and written it.
fn recorded(dir: &Path) -> PathBuf {
    let started = Instant::now();
    loop {
        let files: Vec<PathBuf> = std::fs::read_dir(dir)
            .expect("the record directory")
            .map(|entry| entry.expect("an entry").path())
            .collect();
        if let [file] = files.as_slice() {
            return file.clone();
        }
        assert!(
            started.elapsed() < PATIENCE,
            "no recording in {}: {files:?}",
            dir.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn a_session_recorded_from_smtplib_replays_to_the_same_replies() {
    let scratch = Scratch::new();
    let sessions = scratch.path().join("sessions");
    std::fs::create_dir(&sessions).expect("the record directory");
    let text = std::fs::read_to_string(&scratch.config).expect("the config");
    let text = text.replacen(
        "[smtp]\n",
        &format!("[smtp]\nrecord = '{}'\n", sessions.display()),
        1,
    );
    std::fs::write(&scratch.config, text).expect("the config is written");
    let server = scratch.serve();
    let sent = send_with_smtplib(server.smtp().port());
    let _ = server.terminate();
    if !sent {
        return;
    }
    let file = recorded(&sessions);
    let recording = std::fs::read_to_string(&file).expect("the recording");
    assert!(
        recording.contains("C ehlo client.example\\r\\n\n"),
        "{recording}"
    );
    assert!(recording.contains("C ..hello\\r\\n\n"), "{recording}");

    let output = scratch.mq(&["replay", file.to_str().expect("a UTF-8 path")]);
    let transcript = success(&output);
    assert!(
        transcript.contains("C: ehlo client.example\nS: 250 localhost\n"),
        "{transcript}"
    );
    assert!(
        transcript.contains("S: 250 2.0.0 Ok: queued as QUEUE1\n"),
        "{transcript}"
    );
    assert!(
        transcript.ends_with("-- mq's replies are the recorded ones\n"),
        "{transcript}"
    );
    #[cfg(feature = "headers")]
    assert!(
        transcript.contains("smtp_in_data  headers → Continue"),
        "{transcript}"
    );

    // A recording whose replies mq no longer gives: the difference is shown, and the exit
    // status says so.
    let changed = recording.replace("S 221 2.0.0 Bye", "S 221 2.0.0 See you");
    let file = scratch.path().join("changed.session");
    std::fs::write(&file, changed).expect("the changed recording");
    let output = bounded(
        &mut scratch.command(&["replay", file.to_str().expect("a UTF-8 path")]),
        None,
    );
    let error = one_error_line(&output);
    assert!(
        error.contains("1 replies differ from the recording"),
        "{error}"
    );
    let shown = stdout(&output);
    assert!(
        shown.contains("recorded: 221 2.0.0 See you\nnow:      221 2.0.0 Bye\n"),
        "{shown}"
    );
}
