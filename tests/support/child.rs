//! Tests that kill a server: the test binary re-executes itself to run the same test alone,
//! with an environment variable set that the test checks first: in the child it plays the
//! server's part, which serves until it is killed, and never reaches the test's checks; the
//! parent kills it with SIGKILL at the moment it chooses. No test exists only to be the child,
//! so none passes in a normal run without checking anything.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// The child process, killed when dropped so that a failing test leaves none behind.
#[derive(Debug)]
pub struct ChildTest(Child);

impl ChildTest {
    /// Runs `test` (its path in this test binary, such as `crash::a_server_killed_under_load`:
    /// the calling test's own) in a child with `env` set, and waits up to `patience` for a line of its standard output that
    /// holds `marker`; returns the child and what follows the marker on that line.
    ///
    /// # Panics
    ///
    /// The child does not start, or exits or takes longer without printing the marker.
    pub fn start(
        test: &str,
        env: &[(&str, &OsStr)],
        marker: &'static str,
        patience: Duration,
    ) -> (ChildTest, String) {
        let exe = std::env::current_exe().expect("the test binary");
        let mut command = Command::new(exe);
        command
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("the child starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let child = ChildTest(child);
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            // libtest may have printed the test's name on the same line.
            let rest = BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .find_map(|line| {
                    line.split_once(marker)
                        .map(|(_, rest)| rest.trim().to_owned())
                });
            let _ = tx.send(rest);
        });
        let rest = rx
            .recv_timeout(patience)
            .expect("the child prints its marker in time")
            .expect("the child prints its marker before it exits");
        (child, rest)
    }

    /// Kills the child with SIGKILL and waits until it is gone.
    ///
    /// # Panics
    ///
    /// The child cannot be killed or waited for.
    pub fn kill(&mut self) {
        self.0.kill().expect("SIGKILL the child");
        self.0.wait().expect("the child is gone");
    }
}

impl Drop for ChildTest {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// In the child, once it serves: prints `line` (which holds the parent's marker), then waits
/// until it is killed or its parent goes away (its standard input closes), and exits.
///
/// # Panics
///
/// Standard output cannot be written.
pub fn serve_until_killed(line: &str) -> ! {
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{line}").expect("stdout");
    stdout.flush().expect("stdout");
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    std::process::exit(0);
}
