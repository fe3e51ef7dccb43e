//! Seeded property tests of the CSV scanner: random tables written as RFC 4180 read back the
//! same, and random damage to them is an error or a table, never a panic.

use grappe_eval::{Metric, Role, Table, score};

/// xorshift64*: a small seeded generator, so that a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }
}

const PIECES: [&str; 12] = ["a", "é", ",", "\"", "\n", "\r\n", " ", "«", "’", "0", "1.5", "x\"y"];

fn field(rng: &mut Rng) -> String {
    (0..rng.below(5)).map(|_| PIECES[rng.below(PIECES.len() as u64) as usize]).collect()
}

/// RFC 4180: quoted when it holds a comma, a quote or a line break, quotes doubled.
fn write_field(out: &mut String, text: &str, rng: &mut Rng) {
    if text.contains([',', '"', '\n', '\r']) || text.is_empty() || rng.below(4) == 0 {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

#[test]
fn random_tables_read_back_as_written() {
    let mut rng = Rng(0x5EED_2026_1129);
    for _ in 0..500 {
        let rows = 1 + rng.below(30) as usize;
        let ids: Vec<String> = (0..rows).map(|row| format!("{}{row}", field(&mut rng))).collect();
        let values: Vec<String> = (0..rows).map(|_| field(&mut rng)).collect();
        let end = if rng.below(2) == 0 { "\n" } else { "\r\n" };
        let id_first = rng.below(2) == 0;
        let mut csv = String::new();
        if rng.below(5) == 0 {
            csv.push('\u{feff}');
        }
        csv.push_str(if id_first { "id,value" } else { "value,id" });
        for (id, value) in ids.iter().zip(&values) {
            csv.push_str(end);
            let (first, second) = if id_first { (id, value) } else { (value, id) };
            write_field(&mut csv, first, &mut rng);
            csv.push(',');
            write_field(&mut csv, second, &mut rng);
        }
        if rng.below(2) == 0 {
            csv.push_str(end);
        }
        let table = Table::parse(csv.as_bytes(), Role::Truth).unwrap_or_else(|error| panic!("{error}\n{csv:?}"));
        assert_eq!(table.ids().collect::<Vec<_>>(), ids, "{csv:?}");
        assert_eq!(table.values().collect::<Vec<_>>(), values, "{csv:?}");
        assert_eq!(score(Metric::ExactMatch, &table, &table).unwrap(), 1.0);

        // Damage: bytes replaced, cut, or inserted. An error or a table, never a panic.
        let mut bytes = csv.into_bytes();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(bytes.len() as u64 + 1) as usize;
            match rng.below(3) {
                0 if at < bytes.len() => bytes[at] = b"\",\n\r\xff\xc3a"[rng.below(7) as usize],
                1 => bytes.truncate(at),
                _ => bytes.insert(at, b"\",\n\r\xff"[rng.below(5) as usize]),
            }
        }
        if let Ok(damaged) = Table::parse(&bytes, Role::Predictions) {
            for metric in Metric::ALL {
                let _ = score(metric, &table, &damaged);
            }
        }
    }
}
