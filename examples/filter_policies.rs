//! SNS-style filter policies on an order stream: each subscriber states which orders it wants,
//! and one index answers "who wants this order" for every order.
//!
//! Run with `cargo run --example filter_policies`.

use switchboard::{Filter, FilterError, FilterIndex, Message, Numeric};

#[derive(Debug)]
struct Order {
    id: u32,
}

fn order(id: u32, attrs: &[(&str, switchboard::AttrValue)]) -> Message<Order> {
    attrs.iter().fold(Message::new(Order { id }), |m, (k, v)| {
        m.with_attr(*k, v.clone())
    })
}

fn main() -> Result<(), FilterError> {
    // 1. Policies as SNS JSON, exactly as they would be set on an SNS subscription.
    let big_eu_orders = Filter::from_json(
        r#"{"region": [{"prefix": "eu-"}], "total": [{"numeric": [">=", 100]}]}"#,
    )?;
    let cancellations = Filter::from_json(r#"{"event": ["order_cancelled"]}"#)?;
    let not_test_stores =
        Filter::from_json(r#"{"store": [{"anything-but": {"prefix": "test-"}}]}"#)?;
    let office_network = Filter::from_json(r#"{"client_ip": [{"cidr": "10.0.0.0/8"}]}"#)?;
    let sports = Filter::from_json(r#"{"tags": ["rugby", "tennis"]}"#)?;

    // 2. The same kind of policy in Rust; builder and JSON mean the same thing.
    let vip = Filter::builder()
        .eq("tier", "gold")
        .or([
            Filter::builder().numeric("total", Numeric::gt(500)),
            Filter::builder().equals_ignore_case("channel", "PHONE"),
        ])
        .build()?;
    println!("vip policy as SNS JSON: {}", vip.to_json());

    // 3. A predicate for what a policy cannot say (here: the payload itself).
    let odd_ids = Filter::predicate(|m: &Message<Order>| m.payload().id % 2 == 1);

    // 4. File them in an index, keyed by subscriber.
    let mut index = FilterIndex::new();
    for (name, filter) in [
        ("big-eu", big_eu_orders),
        ("cancellations", cancellations),
        ("real-stores", not_test_stores),
        ("office", office_network),
        ("sports", sports),
        ("vip", vip.clone()),
        ("odd-ids", odd_ids),
    ] {
        index.insert(name, filter);
    }
    let snapshot = index.snapshot();

    // 5. An order stream, and who gets each order.
    let orders = [
        order(
            1,
            &[
                ("region", "eu-west-1".into()),
                ("total", 250.into()),
                ("event", "order_placed".into()),
                ("store", "main".into()),
                ("tier", "gold".into()),
                ("channel", "phone".into()),
            ],
        ),
        order(
            2,
            &[
                ("region", "us-east-1".into()),
                ("total", 90.into()),
                ("event", "order_cancelled".into()),
            ],
        ),
        order(
            3,
            &[
                ("store", "test-berlin".into()),
                ("client_ip", "10.20.30.40".into()),
            ],
        ),
        order(
            4,
            &[("tags", ["rugby", "golf"].into()), ("total", 12.5.into())],
        ),
        order(5, &[]),
    ];
    let mut out = Vec::new();
    for m in &orders {
        out.clear();
        snapshot.matching(m, &mut out);
        println!("order {} {:?} -> {:?}", m.payload().id, m.attributes(), out);
    }

    // 6. Why did the vip subscriber not get order 2?
    println!("vip on order 2: {}", vip.explain(&orders[1]));

    // 7. A subscriber changes its policy: the next snapshot has it, the old one is unchanged.
    // (A string list matches when any element does: "anything-but rugby" alone would still
    // match ["rugby", "golf"] through "golf".)
    index
        .replace(
            &"sports",
            Filter::from_json(r#"{"tags": [{"anything-but": ["rugby", "golf"]}]}"#)?,
        )
        .ok();
    let next = index.snapshot();
    out.clear();
    next.matching(&orders[3], &mut out);
    println!("after the sports change, order 4 -> {out:?}");
    out.clear();
    snapshot.matching(&orders[3], &mut out);
    println!("the old snapshot still says order 4 -> {out:?}");

    // 8. A bad policy says what is wrong with it.
    for bad in [
        r#"{"total": [{"numeric": [">", 100, "<", 10]}]}"#,
        r#"{"client_ip": [{"cidr": "10.0.0.0/40"}]}"#,
        r#"{"event": "order_cancelled"}"#,
        r#"{"event": [{"starts-with": "order"}]}"#,
    ] {
        match Filter::<Order>::from_json(bad) {
            Ok(_) => println!("accepted {bad}"),
            Err(e) => println!("rejected {bad}: {e}"),
        }
    }
    Ok(())
}
