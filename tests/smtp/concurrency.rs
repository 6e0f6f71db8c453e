//! Many clients at once on a two-core server: every message is acknowledged and queued, and
//! the connections are spread over both cores.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::{Mutex, PoisonError};
use std::thread;

use mq_plugin_api::{Connect, Context, Control, Plugin, hooks, plugin};

use crate::support::{Client, TestServer, queued_id};

/// The cores that served connections, by the server port they came in on: each test's server
/// has a port of its own, so tests running side by side do not mix.
static CORES: Mutex<BTreeMap<u16, BTreeSet<usize>>> = Mutex::new(BTreeMap::new());

/// Records the core of every connection at `smtp_in_connect`.
struct CoreRecorder;

#[plugin(name = "test-core-recorder")]
impl CoreRecorder {
    fn new() -> Self {
        CoreRecorder
    }
}

#[hooks]
impl Plugin for CoreRecorder {
    async fn smtp_in_connect(&self, ctx: &mut Context, event: &mut Connect) -> Control {
        let mut cores = CORES.lock().unwrap_or_else(PoisonError::into_inner);
        cores
            .entry(event.local.port())
            .or_default()
            .insert(ctx.core());
        Control::Continue
    }
}

/// The cores that served connections to the server on `port`.
fn cores_for(port: u16) -> BTreeSet<usize> {
    let cores = CORES.lock().unwrap_or_else(PoisonError::into_inner);
    cores.get(&port).cloned().unwrap_or_default()
}

const CLIENTS: usize = 40;
const MESSAGES: usize = 5;

#[test]
fn forty_clients_on_two_cores_get_all_two_hundred_messages_queued() {
    let server = TestServer::start(2, |_| {});
    let addr = server.addr;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            thread::spawn(move || {
                let mut client = Client::greeted(addr);
                client.ehlo();
                let ids: Vec<_> = (0..MESSAGES)
                    .map(|m| {
                        let message = format!("Subject: client {c} message {m}\r\n\r\nhi\r\n");
                        let recipient = format!("c{c}m{m}@localhost");
                        queued_id(&client.message("a@example.org", &recipient, &message))
                    })
                    .collect();
                assert_eq!(client.send("QUIT"), "221 2.0.0 Bye");
                ids
            })
        })
        .collect();
    let mut acknowledged = HashSet::new();
    for client in clients {
        let ids = client.join().expect("every client gets its replies");
        acknowledged.extend(ids);
    }
    assert_eq!(acknowledged.len(), CLIENTS * MESSAGES, "distinct queue ids");

    let entries = server.entries();
    assert_eq!(entries.len(), CLIENTS * MESSAGES);
    let queued: HashSet<_> = entries.iter().map(|e| e.queue_id).collect();
    assert_eq!(queued, acknowledged);
    assert_eq!(
        cores_for(addr.port()),
        BTreeSet::from([0, 1]),
        "SO_REUSEPORT spread 40 connections over both cores"
    );
}
