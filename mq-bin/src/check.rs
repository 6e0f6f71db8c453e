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
    let users = smtp
        .auth
        .all_users()
        .map_err(|e| anyhow!("[smtp.auth] {e}"))?;
    if !users.is_empty() {
        auth::Credentials::new(&users).context("[smtp.auth.users]")?;
        if smtp.tls.is_none() {
            tracing::warn!(
                "[smtp.auth.users] is set but [smtp.tls] is not: AUTH is offered only over TLS, so never"
            );
        }
    }
    relay_ca_files(config)?;
    for warning in config.delivery.warnings() {
        tracing::warn!("{warning}");
    }
    if let Some(path) = &smtp.local_recipient_map {
        // As for TLS: the error's text holds its cause.
        mq_core::smtp::RecipientMap::open(path).map_err(|e| anyhow!("[smtp]: {e}"))?;
    }
    let token = crate::admin_client::token(config)?;
    if let Some(admin) = config.admin.listen
        && !admin.ip().is_loopback()
        && token.is_none()
    {
        bail!("[admin] listen = {admin} is not loopback: set [admin] token or token_file");
    }
    Ok(())
}

/// Loads every relay's `ca_file` as delivery will: a relay whose file does not load would get
/// no mail.
pub(crate) fn relay_ca_files(config: &Config) -> anyhow::Result<()> {
    let delivery = &config.delivery;
    for relay in delivery.smarthost.iter().chain(delivery.routes.values()) {
        if let Some(file) = &relay.ca_file {
            tls::client_config_from_ca_file(file)
                .map_err(|e| anyhow!("relay {} ca_file: {e}", relay.address))?;
        }
    }
    Ok(())
}
