//! `hongyan chat --json` driven as a script would drive it: command lines in, one JSON event
//! per line out, against the real server.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hongyan_cli::chat::{self, ChatArgs};
use hongyan_server::hongyan_store::StoreSpec;
use hongyan_server::{Delivery, Outgoing};
use hongyan_shared::{Packet, PacketType, Transport, UserId};
use hongyan_tests::{Event, TestServer, WAIT};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// A cloneable in-memory stdout.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("test lock").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn events(&self) -> Vec<Value> {
        let bytes = self.0.lock().expect("test lock").clone();
        String::from_utf8(bytes)
            .expect("utf-8 output")
            .lines()
            .map(|line| serde_json::from_str(line).expect("every line is one JSON object"))
            .collect()
    }

    async fn wait_for(&self, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(found) = self.events().into_iter().find(|e| matches(e)) {
                return found;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no matching output line; got {:#?}",
                self.events()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn args(user: &str, flags: &[&str]) -> ChatArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        chat: ChatArgs,
    }
    let mut argv = vec!["chat", "--json", "--user", user];
    argv.extend_from_slice(flags);
    Cli::try_parse_from(argv).expect("valid flags").chat
}

fn event<'a>(name: &'a str) -> impl Fn(&Value) -> bool + 'a {
    move |e| e["event"] == name
}

#[tokio::test]
async fn a_scripted_chat_sends_switches_peer_and_leaves_when_stdin_ends() {
    let server = TestServer::start().await;
    let tcp = server.tcp.to_string();
    let ws = server.ws_url();

    let bob_out = Captured::default();
    let (bob_in, bob_lines) = mpsc::channel(8);
    let bob = tokio::spawn(chat::run_with(
        args("bob", &["--ws", &ws, "--stay"]),
        bob_lines,
        Box::new(bob_out.clone()),
    ));
    bob_out
        .wait_for(|e| e["event"] == "state" && e["state"] == "online")
        .await;

    let alice_out = Captured::default();
    let (alice_in, alice_lines) = mpsc::channel(8);
    for line in ["/to bob", "hello bob", "/to 0", "hello server"] {
        alice_in.send(line.to_owned()).await.unwrap();
    }
    drop(alice_in);
    let alice = chat::run_with(
        args("alice", &["--tcp", &tcp, "--typeu", "5"]),
        alice_lines,
        Box::new(alice_out.clone()),
    );
    tokio::time::timeout(WAIT, alice)
        .await
        .expect("alice leaves once her messages are settled")
        .unwrap();

    let out = alice_out.events();
    let sent: Vec<&Value> = out.iter().filter(|e| e["event"] == "sent").collect();
    assert_eq!(sent.len(), 2, "{out:#?}");
    assert_eq!(sent[0]["to"], "bob");
    assert_eq!(sent[1]["to"], "0");
    for s in &sent {
        assert!(
            out.iter()
                .any(|e| e["event"] == "delivered" && e["fp"] == s["fp"]),
            "{out:#?}"
        );
    }
    assert_eq!(
        out.last().map(|e| e["state"].clone()),
        Some(Value::from("offline"))
    );

    let message = bob_out.wait_for(event("message")).await;
    assert_eq!(message["from"], "alice");
    assert_eq!(message["content"], "hello bob");
    assert_eq!(message["typeu"], 5);
    assert_eq!(message["fp"], sent[0]["fp"]);
    server
        .hooks
        .wait_for(
            |e| matches!(e, Event::C2s(p) if p.data_content.as_deref() == Some("hello server")),
        )
        .await;

    bob_in.send("/quit".to_owned()).await.unwrap();
    tokio::time::timeout(WAIT, bob)
        .await
        .expect("bob quits")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_chat_reports_its_kickout_and_ends() {
    let server = TestServer::start().await;
    let udp = server.udp.to_string();
    let out = Captured::default();
    let (_input, lines) = mpsc::channel(1);
    let first = tokio::spawn(chat::run_with(
        args("carol", &["--udp", &udp, "--stay"]),
        lines,
        Box::new(out.clone()),
    ));
    out.wait_for(|e| e["event"] == "state" && e["state"] == "online")
        .await;
    let second = Captured::default();
    let (_second_input, second_lines) = mpsc::channel(1);
    let _second = tokio::spawn(chat::run_with(
        args("carol", &["--udp", &udp, "--stay"]),
        second_lines,
        Box::new(second.clone()),
    ));
    let kickout = out.wait_for(event("kickout")).await;
    assert_eq!(kickout["code"], 1);
    tokio::time::timeout(WAIT, first)
        .await
        .expect("a kicked chat ends")
        .unwrap()
        .unwrap();
}

/// A chat running in the background.
type ChatTask = tokio::task::JoinHandle<Result<(), Box<dyn std::error::Error + Send + Sync>>>;

/// Starts `hongyan chat --json` as `user` over TCP, waiting until it is online.
async fn chat_online(
    server: &TestServer,
    user: &str,
) -> (Captured, mpsc::Sender<String>, ChatTask) {
    let out = Captured::default();
    let (input, lines) = mpsc::channel(8);
    let tcp = server.tcp.to_string();
    let run = chat::run_with(
        args(user, &["--tcp", &tcp, "--stay"]),
        lines,
        Box::new(out.clone()),
    );
    let chat = tokio::spawn(async move { run.await.map_err(Into::into) });
    out.wait_for(|e| e["event"] == "state" && e["state"] == "online")
        .await;
    (out, input, chat)
}

async fn quit(input: mpsc::Sender<String>, chat: ChatTask) {
    input.send("/quit".to_owned()).await.unwrap();
    tokio::time::timeout(WAIT, chat)
        .await
        .expect("the chat quits")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_chat_shows_what_arrived_while_it_was_away_and_prints_a_conversations_history() {
    let server = TestServer::with(|c| c.store = StoreSpec::Memory).await;
    // Erin's other device (a MobileIMSDK client, which never asks for history) receives
    // bob's messages; nobody reads them.
    let mut device = server.logged_in(Transport::Tcp, "erin").await;
    for i in 1..=3 {
        let sent = server
            .handle
            .send_as(
                &UserId::from("bob"),
                Outgoing::new("erin", format!("away {i}")),
            )
            .await
            .expect("a valid message");
        let packet = device.expect(PacketType::CommonData).await;
        let fp = packet.fp.clone().expect("QoS");
        device.send(&Packet::ack("erin", "bob", &fp, false)).await;
        assert_eq!(sent.outcome().await, Delivery::Delivered);
    }

    let (out, input, chat) = chat_online(&server, "erin").await;
    for i in 1..=3 {
        let content = format!("away {i}");
        let missed = out
            .wait_for(|e| e["event"] == "missed" && e["content"] == content.as_str())
            .await;
        assert_eq!(
            (&missed["peer"], &missed["seq"]),
            (&json!("bob"), &json!(i))
        );
    }
    input.send("/history bob 2".to_owned()).await.unwrap();
    let history = out.wait_for(event("history")).await;
    assert_eq!(history["peer"], "bob");
    let messages = history["messages"].as_array().expect("a list");
    let seqs: Vec<&Value> = messages.iter().map(|m| &m["seq"]).collect();
    assert_eq!(seqs, [2, 3], "the newest two, oldest first");
    assert_eq!(messages[1]["content"], "away 3");
    assert_eq!(messages[1]["from"], "bob");
    input.send("/history".to_owned()).await.unwrap();
    out.wait_for(event("unknown_command")).await;
    quit(input, chat).await;

    // What the chat showed is read: the next start shows nothing as missed, only what is new.
    server
        .handle
        .send_as(&UserId::from("bob"), Outgoing::new("erin", "new"))
        .await
        .expect("a valid message");
    let (out, input, chat) = chat_online(&server, "erin").await;
    // Replayed live, or (if it was in flight to the chat that just logged out) found in the
    // history first.
    out.wait_for(|e| (e["event"] == "message" || e["event"] == "missed") && e["content"] == "new")
        .await;
    input.send("/history bob".to_owned()).await.unwrap();
    let history = out.wait_for(event("history")).await;
    assert_eq!(history["messages"].as_array().map(Vec::len), Some(4));
    let missed: Vec<Value> = out
        .events()
        .into_iter()
        .filter(|e| e["event"] == "missed" && e["content"] != "new")
        .collect();
    assert!(missed.is_empty(), "{missed:#?}");
    quit(input, chat).await;
}

#[test]
fn exactly_one_transport_must_be_chosen() {
    assert!(args("dave", &[]).endpoint().is_err());
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        chat: ChatArgs,
    }
    assert!(
        Cli::try_parse_from(["chat", "--user", "d", "--tcp", "a:1", "--udp", "b:2"]).is_err(),
        "--tcp and --udp conflict"
    );
}
