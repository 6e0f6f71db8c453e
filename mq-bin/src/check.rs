//! `mq check-config`, beyond parsing the file and building every plugin once: what
//! `mq serve` would otherwise find wrong only at start-up.

use anyhow::{Context as _, anyhow, bail};
use mq_core::Config;
use mq_core::smtp::{auth, tls};

/// Loads the TLS files and parses the AUTH hashes as the server does; warns about settings
/// that work but are probably not meant.
pub(crate) fn run(config: &Config) -> anyhow::Result<()> {
    let smtp = &config.smtp;
    if let Some(files) = &smtp.tls {
        // The error's text already holds its cause; as a chain, `mq:` would print it twice.
        tls::server_config(&files.cert, &files.key).map_err(|e| anyhow!("[smtp.tls]: {e}"))?;
    }
    if !smtp.auth.users.is_empty() {
        auth::Credentials::new(&smtp.auth.users).context("[smtp.auth.users]")?;
        if smtp.tls.is_none() {
            tracing::warn!(
                "[smtp.auth.users] is set but [smtp.tls] is not: AUTH is offered only over TLS, so never"
            );
        }
    }
    let token = config.admin.token().map_err(|(path, error)| {
        anyhow::Error::new(error)
            .context(format!("cannot read [admin] token_file {}", path.display()))
    })?;
    if let Some(admin) = config.admin.listen
        && !admin.ip().is_loopback()
        && token.is_none()
    {
        bail!("[admin] listen = {admin} is not loopback: set [admin] token or token_file");
    }
    Ok(())
}
