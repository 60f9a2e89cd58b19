//! Filters on a topic: filtered subscriptions, chained queues with a filter, live filter changes,
//! and a differential check that the topic's index delivers exactly what evaluating every filter
//! would.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use switchboard::{
    Endpoint, Filter, FilterBuilder, Message, Numeric, Overflow, Queue, SubscribeOptions, Topic,
};

fn order(n: u32, region: &str, amount: f64) -> Message<u32> {
    Message::new(n)
        .with_attr("region", region)
        .with_attr("amount", amount)
}

#[test]
fn filtered_subscriptions_get_only_what_they_asked_for() {
    let topic: Topic<u32> = Topic::new();
    let eu = topic.subscribe_filtered(Filter::from_json(r#"{"region": ["eu"]}"#).unwrap());
    let big = topic.subscribe_filtered(
        Filter::builder()
            .numeric("amount", Numeric::ge(100.0))
            .build()
            .unwrap(),
    );
    let all = topic.subscribe();

    let r = topic.publish(order(1, "eu", 5.0)).unwrap();
    assert_eq!((r.delivered, r.filtered_out), (2, 1));
    let r = topic.publish(order(2, "us", 500.0)).unwrap();
    assert_eq!((r.delivered, r.filtered_out), (2, 1));
    let r = topic.publish(order(3, "us", 1.0)).unwrap();
    assert_eq!((r.delivered, r.filtered_out), (1, 2));
    let r = topic.publish(order(4, "eu", 1000.0)).unwrap();
    assert_eq!((r.delivered, r.filtered_out), (3, 0));

    let got = |s: &switchboard::Subscription<u32>| -> Vec<u32> {
        s.try_iter().map(|m| m.into_payload()).collect()
    };
    assert_eq!(got(&eu), [1, 4]);
    assert_eq!(got(&big), [2, 4]);
    assert_eq!(got(&all), [1, 2, 3, 4]);
    let stats = topic.stats();
    assert_eq!(
        (stats.published, stats.delivered, stats.filtered_out),
        (4, 8, 4)
    );
}

#[test]
fn a_message_without_the_attribute_is_filtered_out() {
    let topic: Topic<u32> = Topic::new();
    let sub = topic.subscribe_filtered(Filter::builder().eq("region", "eu").build().unwrap());
    let r = topic.publish(1).unwrap();
    assert_eq!((r.delivered, r.filtered_out), (0, 1));
    assert!(sub.try_recv().is_err());
}

#[test]
fn chained_queue_with_a_filter_and_competing_consumers() {
    let topic: Topic<u32> = Topic::new();
    let eu_orders = Queue::unbounded();
    topic.subscribe_queue_filtered(
        &eu_orders,
        Filter::builder().eq("region", "eu").build().unwrap(),
    );
    for n in 0..20 {
        let region = if n % 2 == 0 { "eu" } else { "us" };
        topic.publish(order(n, region, 1.0)).unwrap();
    }
    // Two competing leased consumers split the ten EU orders, each consumed once.
    let mut seen: Vec<u32> = Vec::new();
    while let Ok(a) = eu_orders.try_receive() {
        seen.push(*a.payload());
        if let Ok(b) = eu_orders.try_receive() {
            seen.push(*b.payload());
            b.ack().unwrap();
        }
        a.ack().unwrap();
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..20).step_by(2).collect::<Vec<_>>());
}

#[test]
fn live_filter_change_takes_effect_from_the_next_publish() {
    let topic: Topic<u32> = Topic::new();
    let sub = topic.subscribe_filtered(Filter::builder().eq("region", "eu").build().unwrap());
    topic.publish(order(1, "us", 1.0)).unwrap();
    assert!(sub.set_filter(Some(Filter::builder().eq("region", "us").build().unwrap())));
    topic.publish(order(2, "us", 1.0)).unwrap();
    topic.publish(order(3, "eu", 1.0)).unwrap();
    // Remove the filter: everything again.
    assert!(topic.set_filter(sub.id(), None));
    topic.publish(order(4, "eu", 1.0)).unwrap();
    let got: Vec<u32> = sub.try_iter().map(|m| m.into_payload()).collect();
    assert_eq!(got, [2, 4]);
    // And a filter can be added to an unfiltered subscription.
    let plain = topic.subscribe();
    assert!(plain.set_filter(Some(Filter::builder().eq("region", "xx").build().unwrap())));
    let r = topic.publish(order(5, "eu", 1.0)).unwrap();
    assert_eq!((r.delivered, r.filtered_out), (1, 1));
}

#[test]
fn unsubscribing_a_filtered_subscription_removes_it_from_the_index() {
    let topic: Topic<u32> = Topic::new();
    let a = topic.subscribe_filtered(Filter::builder().eq("region", "eu").build().unwrap());
    let b = topic.subscribe_filtered(Filter::builder().eq("region", "us").build().unwrap());
    drop(a);
    let r = topic.publish(order(1, "eu", 1.0)).unwrap();
    assert_eq!(
        (r.delivered, r.filtered_out),
        (0, 1),
        "only b is left, and it does not match"
    );
    assert_eq!(topic.subscriber_count(), 1);
    drop(b);
    let r = topic.publish(order(2, "eu", 1.0)).unwrap();
    assert_eq!((r.delivered, r.filtered_out), (0, 0));
}

/// Closing lets go of every subscription, and so of their filters: a predicate's captures are
/// dropped with the close, not kept until the last topic handle goes.
#[test]
fn closing_the_topic_lets_go_of_the_filters() {
    let captured = Arc::new(());
    let topic: Topic<u32> = Topic::new();
    let held = Arc::clone(&captured);
    let sub = topic.subscribe_filtered(Filter::predicate(move |_: &Message<u32>| {
        let _ = &held;
        true
    }));
    let held = Arc::clone(&captured);
    let queue = Queue::unbounded();
    topic.subscribe_queue_filtered(
        &queue,
        Filter::predicate(move |_: &Message<u32>| {
            let _ = &held;
            true
        }),
    );
    assert_eq!(Arc::strong_count(&captured), 3);
    assert!(topic.close());
    assert_eq!(
        Arc::strong_count(&captured),
        1,
        "the filters outlived the close"
    );
    drop(sub);
    assert_eq!(Arc::strong_count(&captured), 1);
}

#[test]
fn predicate_filters_on_a_topic() {
    let topic: Topic<u32> = Topic::new();
    let even = topic.subscribe_filtered(Filter::predicate(|m: &Message<u32>| m.payload() % 2 == 0));
    for n in 0..6 {
        topic.publish(n).unwrap();
    }
    let got: Vec<u32> = even.try_iter().map(|m| m.into_payload()).collect();
    assert_eq!(got, [0, 2, 4]);
}

#[test]
fn filtered_subscription_options_apply() {
    let topic: Topic<u32> = Topic::new();
    let sub = topic.subscribe_filtered_with(
        Filter::builder().eq("region", "eu").build().unwrap(),
        SubscribeOptions::new()
            .capacity(1)
            .overflow(switchboard::Overflow::DropOldest),
    );
    topic.publish(order(1, "eu", 1.0)).unwrap();
    topic.publish(order(2, "us", 1.0)).unwrap();
    let r = topic.publish(order(3, "eu", 1.0)).unwrap();
    assert_eq!(r.dropped_oldest, 1);
    assert_eq!(
        sub.recv_timeout(Duration::from_secs(1))
            .unwrap()
            .into_payload(),
        3
    );
    assert_eq!(sub.dropped(), 1);
}

/// A random filter on a small attribute space: exact values (often shared), prefixes,
/// anything-but, numeric ranges, exists.
fn filter_spec() -> impl Strategy<Value = FilterBuilder> {
    let region = prop_oneof![Just("eu"), Just("us"), Just("ap")];
    prop_oneof![
        region
            .clone()
            .prop_map(|r| Filter::builder().eq("region", r)),
        Just(Filter::builder().prefix("sku", "a")),
        region
            .clone()
            .prop_map(|r| Filter::builder().anything_but("region", [r])),
        (0u32..100)
            .prop_map(|lo| Filter::builder().numeric("amount", Numeric::ge(lo).and_lt(lo + 30))),
        any::<bool>().prop_map(|e| Filter::builder().exists("vip", e)),
        (region.clone(), 0u32..100).prop_map(|(r, lo)| Filter::builder()
            .eq("region", r)
            .numeric("amount", Numeric::gt(lo))),
        (region, Just("b")).prop_map(|(r, p)| Filter::builder().or([
            Filter::builder().eq("region", r),
            Filter::builder().prefix("sku", p)
        ])),
    ]
}

fn message() -> impl Strategy<Value = Message<u32>> {
    (
        prop_oneof![Just("eu"), Just("us"), Just("ap"), Just("af")],
        prop_oneof![Just("a1"), Just("b2"), Just("c3")],
        0u32..130,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(region, sku, amount, has_region, vip)| {
            let mut m = Message::new(amount)
                .with_attr("sku", sku)
                .with_attr("amount", amount);
            if has_region {
                m = m.with_attr("region", region);
            }
            if vip {
                m = m.with_attr("vip", true);
            }
            m
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever filters, in whatever order, with removals and live changes: each subscription
    /// receives exactly the messages its filter matches.
    #[test]
    fn topic_delivers_what_each_filter_matches(
        specs in proptest::collection::vec(filter_spec(), 1..60),
        drop_every in 2usize..7,
        change in proptest::option::of(filter_spec()),
        msgs in proptest::collection::vec(message(), 1..40),
    ) {
        let topic: Topic<u32> = Topic::new();
        let mut subs = Vec::new();
        for spec in &specs {
            let f: Filter<u32> = spec.clone().build().unwrap();
            let check: Filter<u32> = spec.clone().build().unwrap();
            subs.push(Some((topic.subscribe_filtered_with(f, SubscribeOptions::new().unbounded()), check)));
        }
        for (i, s) in subs.iter_mut().enumerate() {
            if i % drop_every == 0 {
                *s = None;
            }
        }
        if let (Some(spec), Some(Some((sub, check)))) = (&change, subs.iter_mut().find(|s| s.is_some())) {
            prop_assert!(sub.set_filter(Some(spec.clone().build().unwrap())));
            *check = spec.clone().build().unwrap();
        }
        let live = subs.iter().flatten().count();
        for m in &msgs {
            let expect = subs.iter().flatten().filter(|(_, f)| f.matches(m)).count();
            let r = topic.publish(m.clone()).unwrap();
            prop_assert_eq!(r.delivered, expect);
            prop_assert_eq!(r.filtered_out, live - expect);
        }
        for (sub, check) in subs.iter().flatten() {
            let got: Vec<u64> = sub.try_iter().map(|m| m.id().get()).collect();
            let expect: Vec<u64> = msgs.iter().filter(|m| check.matches(m)).map(|m| m.id().get()).collect();
            prop_assert_eq!(got, expect);
        }
    }
}

#[test]
fn a_chained_endpoint_with_a_filter() {
    use std::sync::{Arc, Mutex};
    let topic: Topic<u32> = Topic::new();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = {
        let seen = Arc::clone(&seen);
        switchboard::Endpoint::from_fn(move |m: Message<u32>| {
            seen.lock().unwrap().push(m.into_payload());
            Ok(())
        })
    };
    topic.subscribe_endpoint_filtered(
        sink,
        Filter::builder().eq("region", "eu").build().unwrap(),
        switchboard::Overflow::Block,
    );
    for (n, region) in [(1, "eu"), (2, "us"), (3, "eu")] {
        topic.publish(order(n, region, 1.0)).unwrap();
    }
    assert_eq!(*seen.lock().unwrap(), [1, 3]);
    assert_eq!(topic.stats().filtered_out, 1);
}

/// A filtered publish merges the unfiltered and the filtered subscriptions, kept apart in
/// chunks, back into subscription order: 300 closures (several chunks of each kind), every
/// third unfiltered, then some moved from one kind to the other by `set_filter`. Each records
/// its call, and the calls come in subscription order.
#[test]
fn a_filtered_publish_reaches_subscriptions_in_subscription_order() {
    let topic: Topic<u32> = Topic::new();
    let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
    let eu = || Filter::builder().eq("region", "eu").build().unwrap();
    let us = || Filter::builder().eq("region", "us").build().unwrap();
    let mut ids = Vec::new();
    for k in 0..300usize {
        let calls = Arc::clone(&calls);
        let e = Endpoint::from_fn(move |_m: Message<u32>| {
            calls.lock().unwrap().push(k);
            Ok(())
        });
        ids.push(match k % 3 {
            0 => topic.subscribe_endpoint(e),
            1 => topic.subscribe_endpoint_filtered(e, eu(), Overflow::Block),
            _ => topic.subscribe_endpoint_filtered(e, us(), Overflow::Block),
        });
    }
    // Every 10th: unfiltered ones take the "us" filter, filtered ones lose theirs.
    let mut want_eu: Vec<usize> = Vec::new();
    for (k, id) in ids.iter().enumerate() {
        let gets_eu = if k % 10 == 0 {
            let now_filtered = k % 3 == 0;
            assert!(topic.set_filter(*id, now_filtered.then(us)));
            !now_filtered
        } else {
            k % 3 != 2
        };
        if gets_eu {
            want_eu.push(k);
        }
    }
    let report = topic.publish(order(1, "eu", 1.0)).unwrap();
    assert_eq!(*calls.lock().unwrap(), want_eu);
    assert_eq!(
        (report.delivered, report.filtered_out),
        (want_eu.len(), 300 - want_eu.len())
    );
}

/// A message that hits one indexed filter twice (two elements of a string list under one
/// `prefix`) reaches its subscription once. Needs enough filtered subscriptions for the topic
/// to compile them into an index; a few are checked one by one.
#[test]
fn a_message_hitting_one_indexed_filter_twice_is_delivered_once() {
    let topic: Topic<u32> = Topic::new();
    let eu = topic.subscribe_filtered(Filter::builder().prefix("region", "eu-").build().unwrap());
    let _others: Vec<_> = (0..40)
        .map(|i| {
            let f = Filter::builder()
                .eq("tenant", format!("t{i}"))
                .build()
                .unwrap();
            topic.subscribe_filtered(f)
        })
        .collect();
    let m = Message::new(1).with_attr("region", vec!["eu-west", "eu-north"]);
    let report = topic.publish(m).unwrap();
    assert_eq!((report.delivered, report.filtered_out), (1, 40));
    assert_eq!(eu.try_iter().count(), 1);
}
