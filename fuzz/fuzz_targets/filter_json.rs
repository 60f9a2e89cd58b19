//! Arbitrary bytes as an SNS filter policy.
//!
//! * `Filter::from_json` never panics, whatever the text; `str::parse` and serde's `Deserialize`
//!   accept and refuse the same texts and read the same policy.
//! * A policy that parses writes itself back as JSON (`to_json`, and serde's `Serialize`, which
//!   agree) that parses again into the same policy (same JSON) with the same matches. Under
//!   tight limits too (a 64-byte policy, 2 keys, ...): what they accept, its JSON must fit.
//! * `explain` agrees with `matches`.
//! * A `FilterIndex` holding the filter, compiled (16 copies and more, so a level is indexed
//!   rather than scanned), answers what `matches` answers.
//!
//! The messages are made from the policy's own keys, strings and numbers (and variants of them:
//! case changed, cut short, extended, nudged), so that conditions both match and miss.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use switchboard::{AttrValue, Filter, FilterIndex, FilterLimits, Message};

/// Keys, strings and numbers found anywhere in the JSON text.
#[derive(Default)]
struct Found {
    keys: Vec<String>,
    strings: Vec<String>,
    numbers: Vec<f64>,
}

impl Found {
    fn walk(&mut self, v: &Value) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    if !self.keys.contains(k) {
                        self.keys.push(k.clone());
                    }
                    self.walk(v);
                }
            }
            Value::Array(a) => a.iter().for_each(|v| self.walk(v)),
            Value::String(s) => self.strings.push(s.clone()),
            Value::Number(n) => self.numbers.extend(n.as_f64()),
            Value::Bool(_) | Value::Null => {}
        }
    }
}

/// Variants of a string a condition might just match or just miss.
fn string_variants(s: &str, out: &mut Vec<AttrValue>) {
    out.push(AttrValue::from(s));
    out.push(AttrValue::from(s.to_uppercase()));
    out.push(AttrValue::from(s.to_lowercase()));
    out.push(AttrValue::from(format!("{s}x")));
    out.push(AttrValue::from(format!("x{s}")));
    // A CIDR block's address, and that address with its last part changed.
    if let Some((addr, _)) = s.split_once('/') {
        out.push(AttrValue::from(addr));
        out.push(AttrValue::from(format!("{addr}1")));
    }
    // A wildcard pattern with its stars filled in, and taken out.
    out.push(AttrValue::from(s.replace('*', "")));
    out.push(AttrValue::from(s.replace('*', "ab")));
    // Cut at every char boundary of a short string (at a few of a long one).
    let cuts: Vec<usize> = s.char_indices().map(|(i, _)| i).skip(1).collect();
    let step = (cuts.len() / 4).max(1);
    for &i in cuts.iter().step_by(step) {
        out.push(AttrValue::from(&s[..i]));
        out.push(AttrValue::from(&s[i..]));
    }
}

fn number_variants(n: f64, out: &mut Vec<AttrValue>) {
    for v in [
        n,
        -n,
        n + 1e-7,
        n - 1e-7,
        n + 1e-6,
        n - 1e-6,
        n + 0.5,
        n - 1.0,
        n * 10.0,
    ] {
        out.push(AttrValue::Number(v));
    }
}

/// Messages made from what the policy text holds, picked by the input's own bytes.
fn messages(data: &[u8], found: &Found) -> Vec<Message<()>> {
    let mut values = vec![
        AttrValue::from(""),
        AttrValue::Number(0.0),
        AttrValue::Number(-0.0),
        AttrValue::Number(f64::NAN),
        AttrValue::Number(f64::INFINITY),
        AttrValue::Bool(true),
        AttrValue::Bool(false),
        AttrValue::StringList(Vec::new()),
        AttrValue::from("10.0.0.1"),
        AttrValue::from("::1"),
    ];
    for &n in found.numbers.iter().take(6) {
        number_variants(n, &mut values);
    }
    for s in found.strings.iter().take(8) {
        string_variants(s, &mut values);
    }
    // String lists of the strings found, two by two.
    let strs: Vec<String> = values
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    for pair in strs.chunks(2).take(8) {
        values.push(AttrValue::StringList(pair.to_vec()));
    }
    values.truncate(64);
    let mut keys: Vec<&str> = found.keys.iter().map(String::as_str).take(5).collect();
    keys.push("other");

    let mut msgs = vec![Message::new(())];
    // Each key with each value, alone.
    for k in &keys {
        for v in &values {
            msgs.push(Message::new(()).with_attr(*k, v.clone()));
        }
    }
    // Every key at once, the values chosen by the input bytes (and by position).
    let mut seed = data.iter().fold(0x9e37_79b9_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    for round in 0..24 {
        let mut m = Message::new(());
        for (i, k) in keys.iter().enumerate() {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Leave some keys out.
            if seed % 5 == 0 {
                continue;
            }
            let pick = (seed as usize).wrapping_add(round + i) % values.len();
            m = m.with_attr(*k, values[pick].clone());
        }
        msgs.push(m);
    }
    msgs
}

fn same_matches(f: &Filter<()>, g: &Filter<()>, msgs: &[Message<()>], what: &str) {
    for m in msgs {
        assert_eq!(
            f.matches(m),
            g.matches(m),
            "{what}: {} and {} disagree on {:?}",
            f.to_json(),
            g.to_json(),
            m.attributes()
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = Filter::<()>::from_json(text);
    // Tight limits reach the limit errors with short inputs; they must refuse, never panic.
    let tight = FilterLimits::default()
        .with_max_keys(2)
        .with_max_combinations(3)
        .with_max_nesting(1)
        .with_max_bytes(64);
    // What they accept reads back under them: the limits hold for the filter's own JSON too.
    if let Ok(t) = Filter::<()>::from_json_with_limits(text, &tight) {
        let json = t.to_json();
        if let Err(e) = Filter::<()>::from_json_with_limits(&json, &tight) {
            panic!("under tight limits, own JSON {json} of {text:?} does not read back: {e}");
        }
    }

    // The other ways in read what `from_json` reads.
    let via_parse = text.parse::<Filter<()>>();
    let via_serde = serde_json::from_str::<Filter<()>>(text);
    match (&parsed, &via_parse, &via_serde) {
        (Ok(f), Ok(p), Ok(s)) => {
            assert_eq!(f.to_json(), p.to_json());
            assert_eq!(f.to_json(), s.to_json());
        }
        (Err(e), Err(p), Err(_)) => assert_eq!(e, p),
        _ => panic!(
            "from_json, parse and Deserialize disagree on {text:?}: {:?} / {:?} / {:?}",
            parsed.as_ref().map(Filter::to_json),
            via_parse.as_ref().map(Filter::to_json),
            via_serde
                .as_ref()
                .map(Filter::to_json)
                .map_err(|e| e.to_string()),
        ),
    }
    let Ok(f) = parsed else {
        return;
    };

    // The JSON it writes reads back as the same policy.
    let json = f.to_json();
    assert_eq!(
        serde_json::to_string(&f).expect("a policy serializes"),
        json,
        "Serialize and to_json differ"
    );
    let g = Filter::<()>::from_json(&json)
        .unwrap_or_else(|e| panic!("own JSON {json} of {text:?} does not parse: {e}"));
    assert_eq!(g.to_json(), json, "to_json is not stable for {text:?}");

    let mut found = Found::default();
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        found.walk(&v);
    }
    let msgs = messages(data, &found);
    same_matches(&f, &g, &msgs, "round trip");
    for m in &msgs {
        assert_eq!(
            f.explain(m).is_match(),
            f.matches(m),
            "explain and matches disagree on {:?}",
            m.attributes()
        );
    }

    // Compiled into an index (past the size below which a level is scanned), the filter is found
    // exactly when it matches. The empty policy sits beside it as a control.
    let mut index = FilterIndex::new();
    for k in 0..20u32 {
        index.insert(k, f.clone());
    }
    index.insert(100, Filter::all());
    index.compact();
    let snap = index.snapshot();
    let mut got = Vec::new();
    for m in &msgs {
        got.clear();
        snap.matching(m, &mut got);
        let want: Vec<u32> = if f.matches(m) {
            (0..20).chain([100]).collect()
        } else {
            vec![100]
        };
        assert_eq!(got, want, "index on {json} and {:?}", m.attributes());
    }
});
