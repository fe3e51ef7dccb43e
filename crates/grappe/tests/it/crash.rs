//! kill -9 in the middle of writes: every write the server acknowledged is there after restart,
//! and the audit chain still verifies.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{ADMIN_TOKEN, Client, Server, ServerOptions, TestDb, backends};

#[test]
fn acknowledged_writes_survive_kill_9() {
    for backend in backends() {
        let db = TestDb::new(backend);
        let mut server = Server::start(&db.url, &ServerOptions::default());
        let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
        let stop_at = Instant::now() + Duration::from_millis(1500);
        let writers: Vec<_> = (0..4)
            .map(|writer| {
                let base = server.base.clone();
                let acknowledged = acknowledged.clone();
                std::thread::spawn(move || {
                    let client = Client::new(&base);
                    for n in 0.. {
                        let name = format!("Org {writer}-{n}");
                        let body = json!({ "name": name, "kind": "lab" }).to_string().into_bytes();
                        let url = "/api/v1/organisations";
                        // A transport error (the server is gone) ends this writer.
                        match client.try_request("POST", url, Some(ADMIN_TOKEN), Some(("application/json", body))) {
                            Ok(reply) if reply.status == 201 => acknowledged.lock().unwrap().push(name),
                            Ok(reply) => panic!("unexpected answer {}: {}", reply.status, reply.text),
                            Err(_) => break,
                        }
                    }
                })
            })
            .collect();
        while Instant::now() < stop_at {
            std::thread::sleep(Duration::from_millis(20));
        }
        server.kill9();
        for writer in writers {
            let _ = writer.join();
        }
        let acknowledged = acknowledged.lock().unwrap().clone();
        assert!(acknowledged.len() > 20, "{backend:?}: too few writes to mean anything: {}", acknowledged.len());

        let restarted = Server::start(&db.url, &ServerOptions::default());
        let client = restarted.client();
        let listed = client.get("/api/v1/organisations", Some(ADMIN_TOKEN));
        assert_eq!(listed.status, 200);
        let names: std::collections::HashSet<&str> =
            listed.body["items"].as_array().unwrap().iter().map(|o| o["name"].as_str().unwrap()).collect();
        let lost: Vec<&String> = acknowledged.iter().filter(|name| !names.contains(name.as_str())).collect();
        assert!(lost.is_empty(), "{backend:?}: acknowledged but lost after kill -9: {lost:?}");
        let audit = client.get("/api/v1/audit", Some(ADMIN_TOKEN));
        assert_eq!(audit.body["chain_ok"], true, "{backend:?}: {}", audit.text);
        eprintln!("{backend:?}: {} acknowledged writes, all present after kill -9", acknowledged.len());
    }
}
