//! The commands of one session, counted as Postfix's smtpd counts them for its `disconnect`
//! line: `ehlo=1 mail=1 rcpt=0/1 data=0/1 quit=1 commands=3/5`, each command once given with
//! its successes and its total (one number when all succeeded), then all of them.

use std::fmt;

use super::Command;

/// The names counted, in the order the line gives them; what mq does not know is `unknown`.
const NAMES: [&str; 14] = [
    "helo", "ehlo", "starttls", "auth", "mail", "rcpt", "data", "rset", "noop", "vrfy", "expn",
    "help", "quit", "unknown",
];

/// How many times each command was given in a session, and how many succeeded.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    counts: [Count; NAMES.len()],
}

/// Successes and total of one command (or of all of them).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Count {
    ok: u32,
    total: u32,
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ok == self.total {
            write!(f, "{}", self.total)
        } else {
            write!(f, "{}/{}", self.ok, self.total)
        }
    }
}

impl Counts {
    /// Counts the command `name` (one of the line's names; any other counts as `unknown`),
    /// which succeeded when its last reply was 2xx or 3xx.
    pub(crate) fn count(&mut self, name: &str, reply: u16) {
        let index = NAMES.iter().position(|n| *n == name);
        let count = &mut self.counts[index.unwrap_or(NAMES.len() - 1)];
        count.total += 1;
        count.ok += u32::from((200..400).contains(&reply));
    }

    /// The count of `name`; `None` when the client never gave it.
    pub(crate) fn get(&self, name: &str) -> Option<Count> {
        let index = NAMES.iter().position(|n| *n == name)?;
        Some(self.counts[index]).filter(|c| c.total > 0)
    }

    /// All commands together: the line's `commands=`.
    pub(crate) fn commands(&self) -> Count {
        self.counts.iter().fold(Count::default(), |all, c| Count {
            ok: all.ok + c.ok,
            total: all.total + c.total,
        })
    }
}

/// The name a command is counted under.
pub(crate) fn name(command: &Command) -> &'static str {
    match command {
        Command::Hello {
            extended: false, ..
        } => "helo",
        Command::Hello { extended: true, .. } => "ehlo",
        Command::StartTls => "starttls",
        Command::Auth { .. } => "auth",
        Command::MailFrom { .. } => "mail",
        Command::RcptTo { .. } => "rcpt",
        Command::Data => "data",
        Command::Rset => "rset",
        Command::Noop => "noop",
        Command::Vrfy => "vrfy",
        Command::Expn => "expn",
        Command::Help => "help",
        Command::Quit => "quit",
    }
}

/// The name a line that did not parse is counted under: its verb when mq knows it (a command
/// with bad arguments fails as that command), else `unknown`.
pub(crate) fn name_of_line(line: &[u8]) -> &'static str {
    let verb = line.split(u8::is_ascii_whitespace).next().unwrap_or(line);
    let verb = String::from_utf8_lossy(verb).to_ascii_lowercase();
    NAMES
        .iter()
        .find(|name| **name == verb)
        .copied()
        .unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_that_failed_shows_its_successes_over_its_total() {
        let mut counts = Counts::default();
        for (name, reply) in [("ehlo", 250), ("mail", 250), ("rcpt", 554), ("rcpt", 250)] {
            counts.count(name, reply);
        }
        counts.count("data", 354);
        counts.count("bogus", 502);
        assert_eq!(
            counts.get("ehlo").map(|c| c.to_string()).as_deref(),
            Some("1")
        );
        assert_eq!(
            counts.get("rcpt").map(|c| c.to_string()).as_deref(),
            Some("1/2")
        );
        assert_eq!(
            counts.get("unknown").map(|c| c.to_string()).as_deref(),
            Some("0/1")
        );
        assert_eq!(counts.get("quit"), None);
        assert_eq!(counts.commands().to_string(), "4/6");
    }

    #[test]
    fn a_line_that_did_not_parse_counts_under_its_verb_when_it_is_one() {
        assert_eq!(name_of_line(b"MAIL FROM:<bad"), "mail");
        assert_eq!(name_of_line(b"Rcpt"), "rcpt");
        assert_eq!(name_of_line(b"GET / HTTP/1.1"), "unknown");
        assert_eq!(name_of_line(b""), "unknown");
    }
}
