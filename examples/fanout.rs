//! Fan-out then load-balance (SNS to SQS, in process): one order event goes to billing, shipping
//! and analytics queues; each queue is drained by its own workers with leases and acks.
//!
//! Run with `cargo run --example fanout`.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use switchboard::{Message, Overflow, Queue, SubscribeOptions, Topic};

/// The event. Payloads are cloned once per subscriber, so a large one travels as an `Arc`.
#[derive(Debug)]
struct OrderPlaced {
    order: u32,
    customer: &'static str,
    total_cents: u64,
}

fn main() {
    // The contract: every order event says which region it is for.
    let orders: Topic<Arc<OrderPlaced>> = Topic::builder()
        .name("orders")
        .validate(|m: &Message<Arc<OrderPlaced>>| match m.attr("region") {
            Some(_) => Ok(()),
            None => Err("missing attribute: region"),
        })
        .build();

    let billing = Queue::builder().name("billing").build();
    let shipping = Queue::builder().name("shipping").build();
    let analytics = Queue::builder().name("analytics").capacity(2).build();
    orders.subscribe_queue(&billing);
    orders.subscribe_queue(&shipping);
    // Analytics is best effort: when its small queue is full, the new event is dropped (and
    // counted) rather than holding up billing and shipping.
    let analytics_id = orders.subscribe_queue_with(&analytics, Overflow::DropNewest);
    // A live dashboard that only wants the latest events.
    let dashboard = orders.subscribe_with(
        SubscribeOptions::new()
            .capacity(2)
            .overflow(Overflow::DropOldest),
    );
    println!(
        "topic {}: {} subscriptions",
        orders.name().unwrap_or("?"),
        orders.subscriber_count()
    );

    let bad = orders.publish(Arc::new(OrderPlaced {
        order: 0,
        customer: "nobody",
        total_cents: 0,
    }));
    println!("publish without region -> {}", bad.unwrap_err());

    for (order, customer, total_cents) in
        [(1, "ada", 1_250), (2, "grace", 990), (3, "linus", 4_200)]
    {
        let event = Message::new(Arc::new(OrderPlaced {
            order,
            customer,
            total_cents,
        }))
        .with_attr("region", "eu");
        let report = orders.publish(event).unwrap();
        println!(
            "published order {order}: delivered to {}, dropped at {} full subscription(s), \
             {} older event(s) pushed out",
            report.delivered, report.dropped_newest, report.dropped_oldest
        );
    }

    // Billing: two competing workers; each event is billed once.
    thread::scope(|s| {
        for worker in ["billing-1", "billing-2"] {
            let billing = &billing;
            s.spawn(move || {
                while let Ok(d) = billing.receive_timeout(Duration::from_millis(50)) {
                    println!(
                        "{worker}: bill {} cents to {} (order {})",
                        d.payload().total_cents,
                        d.payload().customer,
                        d.payload().order
                    );
                    d.ack().unwrap();
                }
            });
        }
    });

    // Shipping: the first attempt fails, the lease comes back, the retry succeeds.
    let first = shipping.receive().unwrap();
    println!(
        "shipping: order {} failed to print a label, nack",
        first.payload().order
    );
    first.nack().unwrap();
    while let Ok(d) = shipping.try_receive() {
        println!(
            "shipping: ship order {} (attempt {})",
            d.payload().order,
            d.attempt()
        );
        d.ack().unwrap();
    }

    // Analytics kept what fit; the drop is visible, not silent.
    let seen: Vec<u32> = analytics.try_iter().map(|m| m.payload().order).collect();
    let dropped = orders.subscription_stats(analytics_id).unwrap().dropped;
    println!("analytics: saw orders {seen:?}, dropped {dropped}");

    let latest: Vec<u32> = dashboard.try_iter().map(|m| m.payload().order).collect();
    println!(
        "dashboard: latest orders {latest:?}, {} older ones dropped",
        dashboard.dropped()
    );

    let s = orders.stats();
    println!(
        "topic stats: published {}, rejected {}, delivered {}, dropped {}",
        s.published, s.rejected, s.delivered, s.dropped
    );
    println!(
        "billing acked {}, shipping acked {} with {} redelivery",
        billing.stats().acked,
        shipping.stats().acked,
        shipping.stats().redelivered
    );
}
