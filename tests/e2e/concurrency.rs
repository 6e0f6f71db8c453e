//! Many chains on one worker core: a hook that awaits (a timer, a socket) lets the worker run
//! other chains meanwhile, on a single thread.

use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mq_core::{FailurePolicy, Outcome};
use mq_plugin_api::{Async, Context, Control, Data, HookId, Plugin, hooks};
use mq_tests::{
    InFlight, MESSAGE, Sleeper, data, engine, entries, executor, guarded, header_values, loaded,
    new_log, spawn_chain, spawn_logged_chain,
};
use smol::io::{AsyncBufReadExt as _, BufReader};

/// How many chains the one worker runs side by side.
const CHAINS: usize = 1_000;

/// How long each of them awaits.
const NAP: Duration = Duration::from_millis(50);

/// At `smtp_in_data`, connects to `server`, reads one line and stores it in `X-Line`.
struct LineReader {
    server: SocketAddr,
}

#[hooks]
impl Plugin for LineReader {
    async fn smtp_in_data(&self, _ctx: &mut Context, data: &mut Data) -> Control {
        let stream = Async::<TcpStream>::connect(self.server)
            .await
            .expect("the test's listener accepts");
        let mut line = String::new();
        BufReader::new(stream)
            .read_line(&mut line)
            .await
            .expect("the test's listener writes a line");
        data.message.headers_mut().append("X-Line", line.trim_end());
        Control::Continue
    }
}

#[test]
fn a_thousand_chains_that_await_a_timer_overlap_on_one_worker() {
    let in_flight = Rc::new(InFlight::default());
    let engine = Rc::new(engine(vec![loaded(
        "sleeper",
        Sleeper::new(NAP, &in_flight),
    )]));
    let executor = executor();

    let start = Instant::now();
    let chains: Vec<_> = (0..CHAINS)
        .map(|_| spawn_chain(&executor, &engine, data(MESSAGE)))
        .collect();
    let outcomes = smol::block_on(executor.run(async {
        let mut outcomes = Vec::with_capacity(CHAINS);
        for chain in chains {
            outcomes.push(chain.await.0);
        }
        outcomes
    }));
    let elapsed = start.elapsed();

    assert_eq!(outcomes.len(), CHAINS);
    assert!(outcomes.iter().all(|o| *o == Outcome::Proceed));
    assert_eq!(in_flight.now(), 0);
    // They overlapped: more than one call was waiting at once (in practice all of them).
    assert!(in_flight.max() > 1, "at most {} in flight", in_flight.max());
    // One after the other they would take 50 s; together about 60 ms. A tenth of the former
    // cannot flake and still fails a worker that runs them in turn.
    assert!(
        elapsed < NAP * CHAINS as u32 / 10,
        "{CHAINS} chains took {elapsed:?}"
    );
    let metrics = engine.metrics();
    let sleeper = metrics
        .get("sleeper", HookId::SmtpInData)
        .expect("in the chain");
    assert_eq!(sleeper.continues, CHAINS as u64);
    assert_eq!(sleeper.waited_calls(), CHAINS as u64);
}

#[test]
fn a_plugin_awaiting_a_socket_lets_its_worker_finish_other_chains_first() {
    const OTHERS: usize = 20;
    let listener = TcpListener::bind("127.0.0.1:0").expect("a port on localhost");
    let server = listener
        .local_addr()
        .expect("a bound listener has an address");
    let (others_done, others_done_rx) = mpsc::channel::<()>();
    // The server accepts, then answers only once it is told the other chains have completed.
    let server_thread = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("the plugin connects");
        let told = others_done_rx.recv_timeout(Duration::from_secs(30)).is_ok();
        stream
            .write_all(b"hello from the server\r\n")
            .expect("the plugin is still connected");
        told
    });

    let in_flight = Rc::new(InFlight::default());
    // Two engines on one executor: one worker core serving two kinds of work.
    let socket_engine = Rc::new(engine(vec![guarded(
        "line-reader",
        LineReader { server },
        Duration::from_secs(20),
        FailurePolicy::Tempfail,
    )]));
    let other_engine = Rc::new(engine(vec![loaded(
        "sleeper",
        Sleeper::new(Duration::from_millis(1), &in_flight),
    )]));
    let executor = executor();
    let log = new_log();

    let socket_chain = spawn_logged_chain(
        &executor,
        &socket_engine,
        data(MESSAGE),
        &log,
        "socket".into(),
    );
    let others: Vec<_> = (0..OTHERS)
        .map(|i| {
            spawn_logged_chain(
                &executor,
                &other_engine,
                data(MESSAGE),
                &log,
                format!("other {i}"),
            )
        })
        .collect();
    let (socket_outcome, event) = smol::block_on(executor.run(async {
        for other in others {
            assert_eq!(other.await.0, Outcome::Proceed);
        }
        others_done
            .send(())
            .expect("the server thread waits for this");
        socket_chain.await
    }));

    assert!(
        server_thread.join().expect("the server thread ends"),
        "the server was told that the other chains had completed"
    );
    assert_eq!(socket_outcome, Outcome::Proceed);
    assert_eq!(header_values(&event, "X-Line"), ["hello from the server"]);
    let log = entries(&log);
    assert_eq!(log.len(), OTHERS + 1, "{log:?}");
    assert_eq!(log.last().map(String::as_str), Some("socket"), "{log:?}");
    let metrics = socket_engine.metrics();
    let reader = metrics
        .get("line-reader", HookId::SmtpInData)
        .expect("in the chain");
    assert_eq!((reader.continues, reader.waited_calls()), (1, 1));
}
