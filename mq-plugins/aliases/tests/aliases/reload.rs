//! The map file changed under a running server: read again at the next check after `reload`,
//! never with `reload = 0`, and a broken or missing file keeps the map that worked.

use std::thread::sleep;
use std::time::Duration;

use mq_core::testkit::{self, Transcript};
use mq_plugin_aliases::{Aliases, AliasesConfig};
use mq_plugin_api::SharedState;

use crate::support::{MapFile, dialogue, queued};

const BEFORE: &str = "sales@example.org jane@example.org\n";
const AFTER: &str = "sales@example.org bob@example.org, carol@example.net\n";

/// The plugin's instances on the cores of one server: they share one map, as `mq serve`'s do.
struct Server {
    config: AliasesConfig,
    shared: SharedState,
}

impl Server {
    /// Builds the instances as start-up does, reading the map as it is now.
    fn start(map: &MapFile, reload: &str) -> Server {
        let section = map.section(&format!("reload = \"{reload}\""));
        let server = Server {
            config: toml::from_str(&section).unwrap(),
            shared: SharedState::default(),
        };
        drop((server.instance(0), server.instance(1)));
        server
    }

    /// The instance for `core`, made now: its first check is due `reload` after this.
    fn instance(&self, core: usize) -> Aliases {
        let plugin = self.shared.config("aliases", core, toml::Table::new());
        Aliases::new(&self.config, &plugin).expect("the map loads")
    }

    /// A session on a fresh instance, once the 1 ms reload interval has surely passed.
    fn session(&self, recipients: &[&str]) -> Transcript {
        let instance = self.instance(0);
        sleep(Duration::from_millis(5));
        dialogue(testkit::session().plugin(instance), recipients)
    }
}

#[test]
fn a_rewritten_file_is_read_at_the_next_check() {
    let map = MapFile::new(BEFORE);
    let server = Server::start(&map, "1ms");
    let before = server.session(&["sales@example.org"]);
    map.rewrite(AFTER);
    let after = server.session(&["sales@example.org"]);
    insta::assert_snapshot!(format!("{before}-- the file is rewritten --\n{after}"));
    assert_eq!(queued(&before), ["jane@example.org"]);
    assert_eq!(queued(&after), ["bob@example.org", "carol@example.net"]);
}

#[test]
fn reload_zero_reads_the_file_at_start_only() {
    let map = MapFile::new(BEFORE);
    let server = Server::start(&map, "0");
    map.rewrite(AFTER);
    let after = server.session(&["sales@example.org"]);
    assert_eq!(queued(&after), ["jane@example.org"]);
}

#[test]
fn a_long_interval_waits_before_checking() {
    let map = MapFile::new(BEFORE);
    let server = Server::start(&map, "1h");
    map.rewrite(AFTER);
    let after = server.session(&["sales@example.org"]);
    assert_eq!(queued(&after), ["jane@example.org"]);
}

#[test]
fn a_broken_rewrite_keeps_the_map_that_worked_until_it_is_fixed() {
    let map = MapFile::new(BEFORE);
    let server = Server::start(&map, "1ms");
    map.rewrite("sales@example.org\n");
    let broken = server.session(&["sales@example.org"]);
    assert_eq!(queued(&broken), ["jane@example.org"]);
    map.rewrite(AFTER);
    let fixed = server.session(&["sales@example.org"]);
    assert_eq!(queued(&fixed), ["bob@example.org", "carol@example.net"]);
}

#[test]
fn a_deleted_file_keeps_the_map_that_worked() {
    let map = MapFile::new(BEFORE);
    let server = Server::start(&map, "1ms");
    std::fs::remove_file(map.path()).unwrap();
    let after = server.session(&["sales@example.org"]);
    assert_eq!(queued(&after), ["jane@example.org"]);
}
