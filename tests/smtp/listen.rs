//! The listening port belongs to one server: a port another socket holds is refused at start.

use std::net::{SocketAddr, TcpListener};

use mq_core::smtp::{Server, ServerError, SmtpConfig};

use crate::support::{TestServer, open_queue, start_runtime};

/// Starts a two-core server on `address`, expecting it to be refused; returns why.
fn refused_on(address: SocketAddr) -> std::io::Error {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let runtime = start_runtime(2);
    let mut config = SmtpConfig::default();
    config.listen = address;
    let started = Server::start(&runtime, config, open_queue(&dir.path().join("queue")));
    let error = match started {
        Ok(server) => panic!("a second server listens on {}", server.local_addr()),
        Err(ServerError::Bind(_, error)) => error,
        Err(other) => panic!("refused for another reason: {other}"),
    };
    runtime.shutdown();
    error
}

#[test]
fn a_port_held_by_a_plain_listener_is_refused_with_address_already_in_use() {
    let holder = TcpListener::bind("127.0.0.1:0").expect("a free port");
    let error = refused_on(holder.local_addr().expect("its address"));
    assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse, "{error}");
}

#[test]
fn a_second_server_on_the_port_of_a_running_one_is_refused_with_address_already_in_use() {
    let first = TestServer::start(2, |_| {});
    let error = refused_on(first.addr);
    assert_eq!(error.kind(), std::io::ErrorKind::AddrInUse, "{error}");
    assert!(
        error.to_string().contains("Address already in use"),
        "{error}"
    );
    // The first server still takes mail on both cores.
    for _ in 0..4 {
        let mut client = first.client();
        assert_eq!(client.send("QUIT"), "221 2.0.0 Bye");
    }
}
