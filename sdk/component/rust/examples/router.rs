//! Router with fan-out: every record goes unchanged to output 0 (the full stream) and to one
//! routed output, chosen by the configuration, a comma-separated list of
//!   PREFIX=N   keys starting with PREFIX go to output N (the first matching rule wins)
//!   hash=M     other keys go to output 1 + fnv1a32(key) % M (default M = 1: output 1)
//! e.g. "eu-=1,us-=2,hash=3". A configuration that does not parse fails nd_init.
use nodata_component::{component, Component, Emitter, Error, Record, Result};

const MAX_RULES: usize = 64;

struct Router {
    rules: Vec<(&'static [u8], u32)>,
    hash_outputs: u32,
}

/// A decimal number in [min, 65535].
fn parse_number(s: &[u8], min: u32) -> Option<u32> {
    if s.is_empty() || s.len() > 5 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = s.iter().fold(0u32, |v, d| v * 10 + (d - b'0') as u32);
    (min..=65535).contains(&v).then_some(v)
}

fn fnv1a32(b: &[u8]) -> u32 {
    b.iter().fold(2166136261u32, |h, &c| (h ^ c as u32).wrapping_mul(16777619))
}

impl Component for Router {
    fn init(config: &'static [u8]) -> Result<Self> {
        let mut router = Router { rules: Vec::new(), hash_outputs: 1 };
        let mut entries: Vec<&[u8]> = config.split(|&c| c == b',').collect();
        if entries.last() == Some(&&b""[..]) {
            entries.pop(); // nothing after the last comma (or an empty configuration)
        }
        for (i, entry) in entries.into_iter().enumerate() {
            let eq = entry.iter().position(|&c| c == b'=')
                .ok_or_else(|| Error::bad_input(format!("router: entry {} has no '='", i)))?;
            let (name, number) = (&entry[..eq], &entry[eq + 1..]);
            if name == b"hash" {
                router.hash_outputs = parse_number(number, 1)
                    .ok_or_else(|| Error::bad_input("router: hash=M needs 1 <= M <= 65535"))?;
            } else {
                let output = parse_number(number, 0).filter(|_| router.rules.len() < MAX_RULES)
                    .ok_or_else(|| Error::bad_input("router: bad PREFIX=N rule (N <= 65535, at most 64 rules)"))?;
                router.rules.push((name, output));
            }
        }
        Ok(router)
    }

    fn process(&mut self, record: &Record, out: &mut Emitter) -> Result<()> {
        out.forward(0)?;
        let routed = self.rules.iter().find(|(prefix, _)| record.key.starts_with(prefix)).map(|r| r.1);
        out.forward(routed.unwrap_or_else(|| 1 + fnv1a32(record.key) % self.hash_outputs))
    }
}

component!(Router);
