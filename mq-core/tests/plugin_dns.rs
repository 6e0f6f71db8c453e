//! Plugins reach the worker's resolver through `Context::dns`: a lookup from a hook goes to the
//! configured nameserver (a DNS server this test runs on loopback) and its answer comes back.

use std::sync::Mutex;

use mq_core::dns::TestServer;
use mq_core::{Config, Outcome, Registry, Runtime};
use mq_plugin_api::{Address, Context, Control, MailFrom, Plugin, hooks, plugin};

/// What the plugin learnt, for the test to read.
static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Looks up the TXT records of the sender's domain at MAIL FROM.
struct TxtProbe;

#[plugin(name = "txt-probe")]
impl TxtProbe {
    fn new() -> Self {
        TxtProbe
    }
}

#[hooks]
impl Plugin for TxtProbe {
    async fn smtp_in_mail_from(&self, ctx: &mut Context, event: &mut MailFrom) -> Control {
        let answer = match ctx.dns().lookup_txt(event.sender.domain()).await {
            Ok(records) => records.join(","),
            Err(failure) => failure.to_string(),
        };
        SEEN.lock().expect("not poisoned").push(answer);
        Control::Continue
    }
}

#[test]
fn a_hook_looks_up_dns_through_its_context() {
    let server = TestServer::start();
    server.add_txt("probe.example", "v=spf1 -all");
    let text = format!(
        "[dns]\nnameservers = [\"{}\"]\ntimeout = \"2s\"",
        server.address()
    );
    let config = Config::from_toml(&text).expect("config");
    let plan = Registry::linked()
        .expect("registry")
        .plan(&config)
        .expect("plan");
    let runtime = Runtime::start(&plan, 1).expect("runtime");
    for sender in ["a@probe.example", "a@missing.example"] {
        let sender: Address = sender.parse().expect("address");
        let outcome = runtime
            .spawn_on(0, move |worker| async move {
                let mut ctx = worker.context();
                worker
                    .engine()
                    .run(&mut ctx, &mut MailFrom::new(sender))
                    .await
            })
            .wait();
        assert_eq!(outcome, Some(Outcome::Proceed));
    }
    runtime.shutdown();
    assert_eq!(
        *SEEN.lock().expect("not poisoned"),
        ["v=spf1 -all", "no such name"]
    );
    assert!(
        server.udp_queries() >= 2,
        "the lookups went to the test server"
    );
}
