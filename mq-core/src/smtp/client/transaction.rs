//! A mail transaction: MAIL, RCPT, DATA (pipelined when offered), the message, its final reply;
//! RSET and QUIT.

use std::time::Duration;

use mq_plugin_api::{Address, Params, Reply};

use super::commands;
use super::data::{Pieces, Shape, Wire};
use super::error::{ClientError, Stage};
use super::{Connection, State};

/// What [`Connection::send`] came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// The message is written; its verdict comes from [`Connection::finish`].
    Pending {
        /// The reply to MAIL.
        mail: Reply,
        /// The reply to each RCPT, in the order of the recipients: the refused ones do not
        /// get the message.
        recipients: Vec<Reply>,
    },
    /// The transaction was refused and reset; the connection can take the next message (if
    /// [`is_ready`](Connection::is_ready): the RSET may have failed).
    NotSent {
        /// The reply to MAIL.
        mail: Reply,
        /// The replies to the RCPTs sent: all of them when pipelining, none when MAIL was
        /// refused without pipelining.
        recipients: Vec<Reply>,
        /// The reply to DATA, if it was sent.
        data: Option<Reply>,
    },
}

/// Whether a reply accepts the step.
fn positive(reply: &Reply) -> bool {
    reply.code() / 100 == 2
}

impl Connection {
    /// Starts a transaction and writes the message: `MAIL FROM` (with `SIZE=` when the server
    /// offers SIZE, and `BODY=8BITMIME` when it offers 8BITMIME and the message has 8-bit bytes,
    /// unless `sender_params` has them), each `RCPT TO`, `DATA`, then the message
    /// [dot-stuffed](super::dot_stuff) with CRLF line endings and the final dot.
    ///
    /// With PIPELINING (RFC 2920) the commands go out in one write, their replies read after;
    /// without, one at a time. `send` returns once the final dot is written, without its reply:
    /// the caller may run a hook, then calls [`finish`](Connection::finish).
    ///
    /// When MAIL is refused, every RCPT is refused, or DATA does not get `354`, the
    /// transaction is reset (RSET) and the replies come back as [`Sent::NotSent`].
    ///
    /// # Errors
    ///
    /// [`ClientError::NotReady`] when a previous step failed or a final reply is unread;
    /// [`ClientError::InvalidParameter`] for a parameter that cannot go on the wire;
    /// [`ClientError::Rejected`] when the server closes the session (`421`); and the I/O,
    /// timeout and protocol errors of each stage. After these last the connection is not
    /// [ready](Connection::is_ready) again; the first two send nothing and leave it as it was.
    ///
    /// # Examples
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # smol::block_on(async {
    /// use mq_core::smtp::client::{ClientConfig, Connection, Sent};
    /// use mq_core::testkit::sink::{Script, Sink};
    ///
    /// let sink = Sink::start(Script::new().on_rcpt("bad@example.net", "550 5.1.1 no such user"));
    /// let mut connection = Connection::open(sink.address(), "localhost", &ClientConfig::default(), None).await?;
    /// let recipients = [("bad@example.net".parse()?, vec![])];
    /// let sent = connection.send(&"a@example.org".parse()?, &[], &recipients, b"hi\n").await?;
    /// let Sent::NotSent { recipients, .. } = sent else { panic!("{sent:?}") };
    /// assert_eq!(recipients[0].code(), 550);
    /// assert!(connection.is_ready());
    /// # Ok(()) })
    /// # }
    /// ```
    pub async fn send(
        &mut self,
        sender: &Address,
        sender_params: &[(String, Option<String>)],
        recipients: &[(Address, Params)],
        message: &[u8],
    ) -> Result<Sent, ClientError> {
        let shape = Shape::of(message);
        let data = Wire::of(message, shape);
        self.send_wire(sender, sender_params, recipients, shape, &data)
            .await
    }

    /// [`send`](Connection::send) for a message read a piece at a time as it goes out (see
    /// [`Pieces`]), whose `shape` the caller scanned: a delivery then holds a piece of a large
    /// message, not all of it. A message that does not go out as it is (`shape.as_is` false)
    /// is [dot-stuffed](super::dot_stuff) a piece at a time, after a first read-through that
    /// counts its length on the wire for `SIZE`.
    ///
    /// # Errors
    ///
    /// As [`send`](Connection::send); a piece that cannot be read is an I/O error of the
    /// `Data` stage: after it the connection is not ready again if the message had begun to go
    /// out, and is as it was if the read-through before MAIL failed.
    pub async fn send_pieces(
        &mut self,
        sender: &Address,
        sender_params: &[(String, Option<String>)],
        recipients: &[(Address, Params)],
        message: &dyn Pieces,
        shape: Shape,
    ) -> Result<Sent, ClientError> {
        if self.state != State::Ready {
            return Err(ClientError::NotReady(Stage::Mail));
        }
        let data = Wire::pieces(message, shape)
            .await
            .map_err(|error| ClientError::Io(Stage::Data, error))?;
        self.send_wire(sender, sender_params, recipients, shape, &data)
            .await
    }

    async fn send_wire(
        &mut self,
        sender: &Address,
        sender_params: &[(String, Option<String>)],
        recipients: &[(Address, Params)],
        shape: Shape,
        data: &Wire<'_>,
    ) -> Result<Sent, ClientError> {
        if self.state != State::Ready {
            return Err(ClientError::NotReady(Stage::Mail));
        }
        let mail = commands::mail_from(
            &self.extensions,
            sender,
            sender_params,
            shape.eight_bit,
            data.len(),
        )?;
        let rcpts = recipients
            .iter()
            .map(|(recipient, params)| commands::rcpt_to(recipient, params))
            .collect::<Result<Vec<_>, _>>()?;
        let result = if self.extensions.pipelining {
            self.pipelined(&mail, &rcpts, data).await
        } else {
            self.one_by_one(&mail, &rcpts, data).await
        };
        match &result {
            Ok(Sent::Pending { .. }) => {
                self.state = State::AwaitingDot;
                self.transactions += 1;
            }
            Ok(Sent::NotSent { .. }) => {}
            Err(_) => self.state = State::Broken,
        }
        result
    }

    /// MAIL, RCPTs and DATA in one write (RFC 2920), then their replies in order.
    async fn pipelined(
        &mut self,
        mail: &str,
        rcpts: &[String],
        data: &Wire<'_>,
    ) -> Result<Sent, ClientError> {
        let timeouts = self.timeouts;
        let batch = [mail, &rcpts.concat(), "DATA\r\n"].concat();
        self.io
            .write(Stage::Mail, timeouts.command, batch.as_bytes())
            .await?;
        let mail = self.reply(Stage::Mail, timeouts.command).await?;
        let mut recipients = Vec::with_capacity(rcpts.len());
        for _ in rcpts {
            recipients.push(self.reply(Stage::Rcpt, timeouts.command).await?);
        }
        let data_reply = self.reply(Stage::Data, timeouts.data_init).await?;
        let accepted = positive(&mail) && recipients.iter().any(positive);
        if accepted && data_reply.code() / 100 == 3 {
            self.io.write_data(timeouts.data_block, data).await?;
            return Ok(Sent::Pending { mail, recipients });
        }
        if data_reply.code() / 100 == 3 {
            // The server took DATA without a recipient: end the empty message (RFC 2920 §3.1).
            self.io
                .write(Stage::Dot, timeouts.data_block, b".\r\n")
                .await?;
            self.reply(Stage::Dot, timeouts.data_end).await?;
        }
        Ok(self.abandon(mail, recipients, Some(data_reply)).await)
    }

    /// MAIL, each RCPT and DATA, each reply read before the next command.
    async fn one_by_one(
        &mut self,
        mail: &str,
        rcpts: &[String],
        data: &Wire<'_>,
    ) -> Result<Sent, ClientError> {
        let timeouts = self.timeouts;
        let mail = self.command(Stage::Mail, timeouts.command, mail).await?;
        if !positive(&mail) {
            return Ok(self.abandon(mail, Vec::new(), None).await);
        }
        let mut recipients = Vec::with_capacity(rcpts.len());
        for rcpt in rcpts {
            recipients.push(self.command(Stage::Rcpt, timeouts.command, rcpt).await?);
        }
        if !recipients.iter().any(positive) {
            return Ok(self.abandon(mail, recipients, None).await);
        }
        let data_reply = self
            .command(Stage::Data, timeouts.data_init, "DATA\r\n")
            .await?;
        if data_reply.code() / 100 != 3 {
            return Ok(self.abandon(mail, recipients, Some(data_reply)).await);
        }
        self.io.write_data(timeouts.data_block, data).await?;
        Ok(Sent::Pending { mail, recipients })
    }

    /// Resets a refused transaction; the replies are the outcome even if RSET fails, which only
    /// leaves the connection unusable.
    async fn abandon(&mut self, mail: Reply, recipients: Vec<Reply>, data: Option<Reply>) -> Sent {
        if let Err(error) = self.rset().await {
            tracing::debug!(host = self.host, %error, "RSET after a refused transaction failed");
            self.state = State::Broken;
        }
        Sent::NotSent {
            mail,
            recipients,
            data,
        }
    }

    /// Writes `line` (with its CRLF) and reads the reply.
    async fn command(
        &mut self,
        stage: Stage,
        timeout: Duration,
        line: &str,
    ) -> Result<Reply, ClientError> {
        self.io.write(stage, timeout, line.as_bytes()).await?;
        self.reply(stage, timeout).await
    }

    /// Reads a reply; `421`, the server closing the session, is an error, as nothing can
    /// follow it.
    async fn reply(&mut self, stage: Stage, timeout: Duration) -> Result<Reply, ClientError> {
        let reply = self.io.read_reply(stage, timeout).await?.reply;
        if reply.code() == 421 {
            return Err(ClientError::Rejected(stage, reply));
        }
        Ok(reply)
    }

    async fn rset(&mut self) -> Result<(), ClientError> {
        let reply = self
            .command(Stage::Rset, self.timeouts.command, "RSET\r\n")
            .await?;
        if positive(&reply) {
            Ok(())
        } else {
            Err(ClientError::Rejected(Stage::Rset, reply))
        }
    }

    /// Reads the server's reply to the final dot of the message [`send`](Connection::send)
    /// wrote: its verdict on the message for the accepted recipients.
    ///
    /// # Errors
    ///
    /// [`ClientError::NotReady`] when no message is waiting for its reply; the I/O, timeout and
    /// protocol errors of the `Dot` stage. A `421` reply is returned as a reply, and leaves the
    /// connection unusable.
    pub async fn finish(&mut self) -> Result<Reply, ClientError> {
        if self.state != State::AwaitingDot {
            return Err(ClientError::NotReady(Stage::Dot));
        }
        let result = self.io.read_reply(Stage::Dot, self.timeouts.data_end).await;
        self.state = match &result {
            Ok(parsed) if parsed.reply.code() != 421 => State::Ready,
            _ => State::Broken,
        };
        Ok(result?.reply)
    }

    /// Resets the session (RSET) between transactions, for reuse after a failure the caller
    /// decided on.
    ///
    /// # Errors
    ///
    /// [`ClientError::NotReady`] when a final reply is unread or a step failed;
    /// [`ClientError::Rejected`] when RSET is refused; the I/O, timeout and protocol errors of
    /// the `Rset` stage. After an error the connection is not ready again.
    pub async fn reset(&mut self) -> Result<(), ClientError> {
        if self.state != State::Ready {
            return Err(ClientError::NotReady(Stage::Rset));
        }
        let result = self.rset().await;
        if result.is_err() {
            self.state = State::Broken;
        }
        result
    }

    /// Ends the session: QUIT, its reply (within the command timeout), and the connection
    /// closed. Errors are ignored: the work is done.
    pub async fn quit(mut self) {
        let timeout = self.timeouts.command;
        if self.state != State::Broken {
            let _ = self.command(Stage::Quit, timeout, "QUIT\r\n").await;
        }
        self.io.close(timeout).await;
    }
}
