//! SNS filter-policy conformance: the match cases and invalid policies in
//! `../shared/conformance/sns` (read at test time, never copied into the project).

use std::path::PathBuf;

use serde_json::Value;
use switchboard::{AttrValue, Attributes, Filter, FilterIndex, Message};

fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance/sns")
}

fn load(name: &str) -> Option<Vec<Value>> {
    let path = data_dir().join(name);
    match std::fs::read_to_string(&path) {
        Ok(text) => match serde_json::from_str(&text) {
            Ok(Value::Array(rows)) => Some(rows),
            _ => panic!("{} is not a JSON array", path.display()),
        },
        Err(e) => {
            println!(
                "skipping SNS conformance: cannot read {}: {e}",
                path.display()
            );
            None
        }
    }
}

/// SNS message attributes to ours, or why our attribute model cannot say them.
fn attributes(v: &Value) -> Result<Attributes, String> {
    let mut attrs = Attributes::new();
    let Some(map) = v.as_object() else {
        return Err("attributes are not an object".into());
    };
    for (k, a) in map {
        let ty = a["Type"].as_str().unwrap_or("");
        let raw = a["Value"]
            .as_str()
            .ok_or("attribute Value is not a string")?;
        let value = match ty {
            "String" => AttrValue::String(raw.to_owned()),
            "Number" => AttrValue::Number(
                raw.parse()
                    .map_err(|_| format!("Number {raw:?} does not parse"))?,
            ),
            "String.Array" => match serde_json::from_str::<Value>(raw) {
                Ok(Value::Array(items)) => {
                    let strings: Option<Vec<String>> = items
                        .iter()
                        .map(|i| i.as_str().map(str::to_owned))
                        .collect();
                    AttrValue::StringList(strings.ok_or_else(|| {
                        format!("String.Array {raw} has non-string elements (ours holds strings)")
                    })?)
                }
                Ok(_) => {
                    return Err(format!(
                        "String.Array {raw:?} is a bare JSON scalar (ours holds lists)"
                    ))
                }
                Err(_) => {
                    return Err(format!(
                        "String.Array {raw:?} is not JSON (ours cannot hold an unparsable list)"
                    ))
                }
            },
            other => {
                return Err(format!(
                    "attribute type {other:?} is not an SNS type we model"
                ))
            }
        };
        attrs.insert(k.clone(), value);
    }
    Ok(attrs)
}

#[test]
fn attribute_match_cases() {
    let Some(rows) = load("sns_conformance.json") else {
        return;
    };
    let (mut run, mut skipped, mut failed) = (0, 0, Vec::new());
    for row in &rows {
        let source = row["source"].as_str().unwrap_or("?");
        let attrs = match attributes(&row["attributes"]) {
            Ok(a) => a,
            Err(why) => {
                println!("skip {source}: {why}");
                skipped += 1;
                continue;
            }
        };
        let expect = row["expect"].as_bool().expect("expect is a bool");
        let policy = row["policy"].to_string();
        let filter = match Filter::<()>::from_json(&policy) {
            Ok(f) => f,
            Err(e) => {
                failed.push(format!("{source}: policy {policy} rejected: {e}"));
                continue;
            }
        };
        let msg = Message::new(()).with_attributes(attrs);
        run += 1;
        if filter.matches(&msg) != expect {
            failed.push(format!(
                "{source}: {policy} on {:?}: expected {expect}\n    {}",
                msg.attributes(),
                filter.explain(&msg)
            ));
        }
    }
    report(
        "SNS attribute cases",
        run,
        skipped,
        &failed,
        170,
        rows.len(),
    );
}

#[test]
fn invalid_policies_are_rejected() {
    let Some(rows) = load("sns_invalid_policies.json") else {
        return;
    };
    let (mut run, mut skipped, mut failed) = (0, 0, Vec::new());
    for row in &rows {
        let source = row["source"].as_str().unwrap_or("?");
        let note = row["note"].as_str().unwrap_or("");
        if row["scope"] != "MessageAttributes" {
            println!("skip {source}: MessageBody scope (we filter attributes only)");
            skipped += 1;
            continue;
        }
        if note.contains("CONTESTED") {
            println!("skip {source}: contested in the data ({note}); we accept it");
            skipped += 1;
            continue;
        }
        let text = if row["policy_is_raw_text"].as_bool() == Some(true) {
            row["policy"].as_str().expect("raw policy text").to_owned()
        } else {
            row["policy"].to_string()
        };
        run += 1;
        match Filter::<()>::from_json(&text) {
            Ok(_) => failed.push(format!(
                "{source}: {text} accepted; SNS says {}",
                row["reason"]
            )),
            Err(e) => println!("ok {text}: {e}  (SNS: {})", row["reason"]),
        }
    }
    report(
        "SNS invalid policies",
        run,
        skipped,
        &failed,
        55,
        rows.len(),
    );
}

/// Prints a suite's tally, then fails on any failed case, or when fewer than `min_run` of the
/// `total` cases ran (a data file that lost its rows must not pass quietly).
fn report(
    suite: &str,
    run: usize,
    skipped: usize,
    failed: &[String],
    min_run: usize,
    total: usize,
) {
    println!(
        "{suite}: {run} run, {skipped} skipped, {} failed",
        failed.len()
    );
    assert!(
        failed.is_empty(),
        "{} failures:\n{}",
        failed.len(),
        failed.join("\n")
    );
    assert!(run >= min_run, "only {run} of {total} cases ran");
}

#[test]
fn valid_policies_are_accepted() {
    let Some(rows) = load("sns_valid_policies.json") else {
        return;
    };
    let mut run = 0;
    for row in &rows {
        if row["scope"] != "MessageAttributes" {
            continue;
        }
        run += 1;
        let text = row["policy"].to_string();
        if let Err(e) = Filter::<()>::from_json(&text) {
            panic!("{text} rejected: {e}");
        }
    }
    assert!(run >= 5);
}

/// Every conformance policy in one index, every conformance message against it: the index
/// gives what the linear scan gives, and each row's own filter gives the row's answer.
#[test]
fn attribute_cases_through_the_index() {
    let Some(rows) = load("sns_conformance.json") else {
        return;
    };
    let mut index = FilterIndex::new();
    let mut cases = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let Ok(attrs) = attributes(&row["attributes"]) else {
            continue;
        };
        let filter =
            Filter::<()>::from_json(&row["policy"].to_string()).expect("conformance policy parses");
        index.insert(i, filter);
        cases.push((
            i,
            Message::new(()).with_attributes(attrs),
            row["expect"].as_bool() == Some(true),
        ));
    }
    let snap = index.snapshot();
    let mut matched = 0;
    for (i, msg, expect) in &cases {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        snap.matching(msg, &mut a);
        snap.matching_linear(msg, &mut b);
        assert_eq!(a, b, "case {i}");
        assert_eq!(a.contains(i), *expect, "case {i}");
        matched += a.len();
    }
    assert!(cases.len() >= 170 && matched > cases.len());
}
