//! `mq serve` as a system service: the pid file, and giving up root's rights once the ports
//! are bound (`[server] user` and `group`).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use mq_core::service::ServerConfig;
use rustix::process::{Gid, Uid};

/// The pid file `mq serve` wrote, removed when dropped (at a clean stop).
#[derive(Debug)]
pub(crate) struct PidFile(PathBuf);

impl PidFile {
    /// Writes this process's id, and a newline, to `path`.
    pub(crate) fn write(path: &Path) -> anyhow::Result<PidFile> {
        let text = format!("{}\n", std::process::id());
        std::fs::write(path, text)
            .with_context(|| format!("cannot write the pid file {}", path.display()))?;
        Ok(PidFile(path.to_owned()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Gone already, or in a directory only root may change: the service manager cleans
        // up after a process it knows by its pid file.
        if let Err(error) = std::fs::remove_file(&self.0) {
            tracing::debug!(path = %self.0.display(), %error, "pid file not removed");
        }
    }
}

/// Whom `mq serve` runs as once its ports are bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Account {
    name: String,
    uid: u32,
    gid: u32,
}

/// The account `[server] user` and `group` name, if `user` is set. Names are looked up in
/// `/etc/passwd` and `/etc/group`; numbers are taken as they are.
pub(crate) fn account(config: &ServerConfig) -> anyhow::Result<Option<Account>> {
    let Some(user) = &config.user else {
        if config.group.is_some() {
            bail!("[server] group is set without [server] user");
        }
        return Ok(None);
    };
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    // A user named by number may have no line; a name must.
    let numeric = user.parse::<u32>().ok();
    let line = lookup(&passwd, |fields| match numeric {
        Some(uid) => fields.get(2) == Some(&uid.to_string().as_str()),
        None => fields.first() == Some(&user.as_str()),
    });
    let uid = numeric
        .or_else(|| line.as_ref()?.get(2)?.parse().ok())
        .with_context(|| format!("[server] user {user:?}: no such user in /etc/passwd"))?;
    let gid = match &config.group {
        Some(group) => group_id(group)?,
        None => line
            .and_then(|fields| fields.get(3)?.parse().ok())
            .with_context(|| {
                format!("[server] user {user:?} has no primary group: set [server] group")
            })?,
    };
    Ok(Some(Account {
        name: user.clone(),
        uid,
        gid,
    }))
}

/// The gid of `group`: a number as it is, a name from `/etc/group`.
fn group_id(group: &str) -> anyhow::Result<u32> {
    if let Ok(gid) = group.parse() {
        return Ok(gid);
    }
    let groups = std::fs::read_to_string("/etc/group").unwrap_or_default();
    lookup(&groups, |fields| fields.first() == Some(&group))
        .and_then(|fields| fields.get(2)?.parse().ok())
        .with_context(|| format!("[server] group {group:?}: no such group in /etc/group"))
}

/// The fields of the first line of a colon-separated database that `matches`.
fn lookup(database: &str, matches: impl Fn(&[&str]) -> bool) -> Option<Vec<String>> {
    database
        .lines()
        .map(|line| line.split(':').collect::<Vec<_>>())
        .find(|fields| matches(fields))
        .map(|fields| fields.into_iter().map(str::to_owned).collect())
}

/// Becomes `account`: its group as the only group, then its user, for good (real, effective
/// and saved ids). Run as root, before any thread is started: on Linux each thread has its
/// own ids, and a thread started earlier would keep root's. Not root, it is a no-op for the
/// account mq already runs as, and an error for another.
pub(crate) fn become_account(account: &Account) -> anyhow::Result<()> {
    let current = rustix::process::getuid();
    if !rustix::process::geteuid().is_root() {
        if current.as_raw() == account.uid {
            return Ok(());
        }
        bail!(
            "cannot run as [server] user {:?}: mq serve runs as uid {}, not root",
            account.name,
            current.as_raw()
        );
    }
    let threads: Vec<String> = std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
                .map(|name| name.trim().to_owned())
                .collect()
        })
        .unwrap_or_default();
    if threads.len() > 1 {
        bail!(
            "cannot give up root's rights: threads are running already ({})",
            threads.join(", ")
        );
    }
    let gid = Gid::from_raw(account.gid);
    rustix::thread::set_thread_groups(&[gid]).context("cannot set the supplementary groups")?;
    rustix::thread::set_thread_gid(gid)
        .with_context(|| format!("cannot change to group {}", account.gid))?;
    rustix::thread::set_thread_uid(Uid::from_raw(account.uid))
        .with_context(|| format!("cannot change to user {:?}", account.name))?;
    if rustix::process::geteuid().is_root() || rustix::process::getuid().is_root() {
        bail!("still root after changing to user {:?}", account.name);
    }
    tracing::info!(user = %account.name, uid = account.uid, gid = account.gid, "running as an unprivileged user");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(user: Option<&str>, group: Option<&str>) -> ServerConfig {
        let user = user.map(|user| format!("user = {user:?}\n"));
        let group = group.map(|group| format!("group = {group:?}\n"));
        let text = format!(
            "[server]\n{}{}",
            user.unwrap_or_default(),
            group.unwrap_or_default()
        );
        mq_core::Config::from_toml(&text).unwrap().server
    }

    #[test]
    fn accounts_are_found_by_name_or_number() {
        assert_eq!(account(&server(None, None)).unwrap(), None);
        let root = account(&server(Some("root"), None)).unwrap().unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        let numeric = account(&server(Some("4242"), Some("4343")))
            .unwrap()
            .unwrap();
        assert_eq!((numeric.uid, numeric.gid), (4242, 4343));
        let error = account(&server(Some("no-such-user-here"), None)).unwrap_err();
        assert!(error.to_string().contains("no such user"), "{error}");
        let error = account(&server(None, Some("root"))).unwrap_err();
        assert!(
            error.to_string().contains("without [server] user"),
            "{error}"
        );
    }
}
