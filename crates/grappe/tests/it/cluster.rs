//! Two `grappe serve` processes on one PostgreSQL: both serve the same platform, and the
//! background loop runs in exactly one of them, moving to the other when that one dies.

use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{ADMIN_TOKEN, Backend, Server, ServerOptions, TestDb, backends, eventually};

fn leases(server: &Server) -> Value {
    let reply = server.client().get("/api/v1/system/leases", Some(ADMIN_TOKEN));
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body
}

fn runs_ticker(server: &Server) -> bool {
    leases(server)["running_here"].as_array().is_some_and(|loops| loops.iter().any(|name| name == "ticker"))
}

fn ticks(server: &Server) -> i64 {
    let body = leases(server);
    body["leases"]
        .as_array()
        .and_then(|all| all.iter().find(|l| l["name"] == "ticker"))
        .map_or(0, |l| l["ticks"].as_i64().unwrap())
}

#[test]
fn two_servers_share_one_postgres_and_one_ticker() {
    if !backends().contains(&Backend::Postgres) {
        return;
    }
    let db = TestDb::new(Backend::Postgres);
    let options = ServerOptions {
        demo: false,
        env: vec![("GRAPPE_LEASE_TTL_MS".into(), "3000".into()), ("GRAPPE_LEASE_TICK_MS".into(), "250".into())],
        ..ServerOptions::default()
    };
    let mut first = Server::start(&db.url, &options);
    let mut second = Server::start(&db.url, &options);
    assert_ne!(leases(&first)["instance"], leases(&second)["instance"]);

    // A write through one is read through the other.
    let created = first.client().post(
        "/api/v1/organisations",
        Some(ADMIN_TOKEN),
        &json!({ "name": "Shared Lab", "kind": "lab" }),
    );
    assert_eq!(created.status, 201);
    let listed = second.client().get("/api/v1/organisations", Some(ADMIN_TOKEN));
    assert!(listed.text.contains("Shared Lab"));

    // Exactly one runs the ticker, and keeps it.
    eventually(Duration::from_secs(10), "one ticker holder", || {
        (runs_ticker(&first) != runs_ticker(&second)).then_some(())
    });
    let first_holds = runs_ticker(&first);
    let before = ticks(&first);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(runs_ticker(&first), first_holds);
    assert_eq!(runs_ticker(&second), !first_holds, "never both, never neither");
    assert!(ticks(&second) > before, "the holder ticks");

    // Kill the holder: the other takes over once the lease expires.
    let (holder, survivor) = if first_holds { (&mut first, &second) } else { (&mut second, &first) };
    holder.kill9();
    eventually(Duration::from_secs(10), "the survivor to take the ticker", || runs_ticker(survivor).then_some(()));
    let after_takeover = ticks(survivor);
    std::thread::sleep(Duration::from_millis(800));
    assert!(ticks(survivor) > after_takeover, "the survivor ticks");
    let lease = leases(survivor);
    assert_eq!(lease["leases"][0]["holder"], lease["instance"]);
}
