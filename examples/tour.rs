//! A guided tour of switchboard: each step prints what it shows.
//!
//! Run it with `cargo run --release --example tour`.

use std::thread;
use std::time::Duration;

use switchboard::{
    Filter, ManualClock, Message, Overflow, Queue, SubscribeOptions, Topic, TryRecvError,
};

fn step(title: &str) {
    println!("\n== {title}");
}

fn main() {
    println!("switchboard: in-process messaging patterns (queues, topics, filters, routing)");

    step("1. A queue: many senders, competing receivers, each message consumed once");
    let q = Queue::bounded(64);
    thread::scope(|s| {
        for worker in 0..2 {
            let q = q.clone();
            s.spawn(move || {
                let mut n = 0;
                for m in &q {
                    let _: u32 = m.into_payload();
                    n += 1;
                }
                println!("   worker {worker} consumed {n} messages");
            });
        }
        // Two senders, 500 messages each, into a queue of 64: they wait for room while the
        // workers compete for messages (the split between them need not be even).
        thread::scope(|senders| {
            for sender in 0..2u32 {
                let q = q.clone();
                senders.spawn(move || {
                    for i in 0..500 {
                        q.send(sender * 500 + i).unwrap();
                    }
                });
            }
        });
        q.close(); // receivers drain what is left, then stop
    });
    let s = q.stats();
    println!(
        "   sent {} / received {} / left {}",
        s.sent, s.received, s.visible
    );

    step("2. Backpressure: a bounded queue refuses (try_send) or waits (send) when full");
    let small = Queue::bounded(2);
    small.try_send("a").unwrap();
    small.try_send("b").unwrap();
    let err = small.try_send("c").unwrap_err();
    println!("   third try_send: {err}");
    println!(
        "   the message is handed back: {:?}",
        err.into_inner().into_payload()
    );

    step("3. Leases: at-least-once delivery with ack, nack and redelivery");
    let clock = ManualClock::new();
    let dlq = Queue::builder().name("orders-dlq").build();
    let jobs = Queue::builder()
        .name("orders")
        .clock(clock.clone())
        .visibility_timeout(Duration::from_secs(30))
        .dead_letter(&dlq, 3)
        .build();
    jobs.send(Message::new("order-1").with_attr("region", "eu"))
        .unwrap();
    let d = jobs.receive().unwrap();
    println!("   leased {:?}, attempt {}", d.payload(), d.attempt());
    d.nack().unwrap();
    let d = jobs.receive().unwrap();
    println!("   nacked, then leased again: attempt {}", d.attempt());
    drop(d); // a consumer that gives up (or panics) puts the message back at once
    let d = jobs.receive().unwrap();
    println!(
        "   dropped without a verdict, leased again: attempt {}",
        d.attempt()
    );
    clock.advance(Duration::from_secs(31)); // the consumer stalls past its visibility timeout
    println!(
        "   the lease expired; the stale ack says: {}",
        d.ack().unwrap_err()
    );
    println!(
        "   after 3 failed deliveries the message is in the dead-letter queue: {} there",
        dlq.len()
    );
    let dead = dlq.try_recv().unwrap();
    let info = dead.dead_letter().unwrap();
    println!(
        "   dead letter from {}: {}",
        info.source().unwrap_or("?"),
        info.reason()
    );

    step("4. Delay and time-to-live, on a manual clock (no sleeping)");
    jobs.send_after("reminder", Duration::from_secs(60))
        .unwrap();
    jobs.send(Message::new("flash sale").with_ttl(Duration::from_secs(10)))
        .unwrap();
    clock.advance(Duration::from_secs(61));
    let got: Vec<_> = jobs.try_iter().map(|m| m.into_payload()).collect();
    println!(
        "   after 61 s: received {got:?}; expired and never delivered: {}",
        jobs.stats().expired
    );

    step("5. Close: senders get their message back; receivers drain, then see Closed");
    jobs.send("last").unwrap();
    jobs.close();
    println!(
        "   send after close: {}",
        jobs.send("too late").unwrap_err()
    );
    println!(
        "   drained: {:?}",
        jobs.try_recv().map(|m| m.into_payload())
    );
    println!(
        "   then: {}",
        jobs.try_recv().map(|m| m.into_payload()).unwrap_err()
    );
    assert_eq!(jobs.try_recv().unwrap_err(), TryRecvError::Closed);

    let s = jobs.stats();
    println!(
        "   stats: sent {} received {} (redeliveries included: {}) acked {} nacked {} abandoned {} lease-expired {} dead-lettered {} expired {}",
        s.sent, s.received, s.redelivered, s.acked, s.nacked, s.abandoned, s.lease_expired, s.dead_lettered, s.expired
    );

    step("6. FIFO groups: in order within a group, one in flight per group, groups in parallel");
    let fifo: Queue<(&str, u32)> = Queue::builder().fifo().build();
    for (group, n) in [("alice", 1), ("alice", 2), ("bob", 1), ("alice", 3)] {
        fifo.send(Message::new((group, n)).with_group(group))
            .unwrap();
    }
    let a1 = fifo.receive().unwrap();
    let b1 = fifo.receive().unwrap();
    println!(
        "   two leases are held, on {:?} and {:?}",
        a1.payload(),
        b1.payload()
    );
    println!(
        "   a third finds nothing: alice is busy until her message is settled: {}",
        fifo.try_receive().unwrap_err()
    );
    a1.nack().unwrap();
    let again = fifo.receive().unwrap();
    println!(
        "   a nacked message comes back first in its group: {:?} (attempt {})",
        again.payload(),
        again.attempt()
    );
    again.ack().unwrap();
    b1.ack().unwrap();
    let rest: Vec<_> = fifo.try_iter().map(|m| m.into_payload()).collect();
    println!("   then the rest, in order: {rest:?}");

    step("7. De-duplication: a repeated dedup id within the window is accepted once");
    let payments: Queue<&str> = Queue::unbounded();
    let first = payments
        .send(Message::new("charge 10").with_dedup_id("pay-1"))
        .unwrap();
    let retry = payments
        .send(Message::new("charge 10").with_dedup_id("pay-1"))
        .unwrap();
    println!(
        "   first send: {first:?}; the retry: {retry:?}; queued: {}",
        payments.len()
    );

    step("8. A topic: every subscriber gets every message; a queue can subscribe (SNS to SQS)");
    let orders: Topic<String> = Topic::new();
    let audit = orders.subscribe();
    let dashboard = orders.subscribe_with(
        SubscribeOptions::new()
            .capacity(2)
            .overflow(Overflow::DropOldest),
    );
    let billing = Queue::unbounded();
    orders.subscribe_queue(&billing);
    for i in 1..=4 {
        let report = orders.publish(format!("order-{i}")).unwrap();
        if i == 4 {
            println!("   last publish: {report:?}");
        }
    }
    println!("   audit got {} messages", audit.try_iter().count());
    println!(
        "   the dashboard keeps the newest 2 and says it dropped {}: {:?}",
        dashboard.dropped(),
        dashboard
            .try_iter()
            .map(|m| m.into_payload())
            .collect::<Vec<_>>()
    );
    println!(
        "   billing's queue holds {} for its competing workers",
        billing.len()
    );

    step("9. A consumer pool: a handler on worker threads, with retries and a dead-letter queue");
    let dlq: Queue<u32> = Queue::unbounded();
    let work: Queue<u32> = Queue::builder().dead_letter(&dlq, 2).build();
    let pool = work.consume(2, |m| {
        if *m.payload() == 13 {
            Err("unlucky")
        } else {
            Ok(())
        }
    });
    work.send_batch(10..16).unwrap();
    work.close();
    let stats = pool.join();
    println!(
        "   processed {}, failed attempts {}, dead-lettered {}",
        stats.processed, stats.failed, stats.dead_lettered
    );
    println!(
        "   the dead letter says: {}",
        dlq.try_recv().unwrap().dead_letter().unwrap().reason()
    );

    step("10. Filters: subscribers declare what they want, in SNS filter-policy JSON");
    let events: Topic<&str> = Topic::new();
    let policy = r#"{"region": ["eu"], "amount": [{"numeric": [">=", 100]}]}"#;
    let big_eu = events.subscribe_filtered(Filter::from_json(policy).unwrap());
    let vip = events.subscribe_filtered(Filter::builder().exists("vip", true).build().unwrap());
    for (what, region, amount, is_vip) in [
        ("a", "eu", 50, false),
        ("b", "eu", 500, true),
        ("c", "us", 900, false),
    ] {
        let mut m = Message::new(what)
            .with_attr("region", region)
            .with_attr("amount", amount);
        if is_vip {
            m = m.with_attr("vip", true);
        }
        let r = events.publish(m).unwrap();
        println!(
            "   {what}: delivered to {}, filtered out for {}",
            r.delivered, r.filtered_out
        );
    }
    println!(
        "   big EU orders: {:?}; VIP: {:?}",
        big_eu
            .try_iter()
            .map(|m| m.into_payload())
            .collect::<Vec<_>>(),
        vip.try_iter().map(|m| m.into_payload()).collect::<Vec<_>>()
    );
    let f: Filter<&str> = Filter::from_json(policy).unwrap();
    println!(
        "   why not \"a\"? {}",
        f.explain(
            &Message::new("a")
                .with_attr("region", "eu")
                .with_attr("amount", 50)
        )
    );
    let bad = Filter::<&str>::from_json(r#"{"amount": [{"numeric": [">", "ten"]}]}"#).unwrap_err();
    println!("   a bad policy is refused precisely: {bad}");

    step("11. Recipient list: each order goes to the recipients its route names");
    let (eu, us) = (Queue::<&str>::unbounded(), Queue::unbounded());
    let list = switchboard::RecipientList::new(switchboard::Route::by_attribute("recipients"));
    list.add("eu", &eu);
    list.add("us", &us);
    let order = Message::new("order-9").with_attr("recipients", ["eu", "us", "mars"]);
    println!("   report: {:?}", list.send(order).unwrap());

    step("12. Request-reply: the reply comes back through the request, typed");
    let service: Queue<switchboard::Request<u32, u32>> = Queue::unbounded();
    let responder = {
        let service = service.clone();
        thread::spawn(move || {
            for m in &service {
                let req = m.into_payload();
                let square = req.body() * req.body();
                let _ = req.reply(square);
            }
        })
    };
    let requester = switchboard::Requester::new(&service);
    println!(
        "   7 squared: {:?}",
        requester.request(7, Duration::from_secs(1))
    );
    service.close();
    responder.join().unwrap();
    step("13. Scatter-gather: a quote auction through a topic, completed by the first two quotes");
    let suppliers: Topic<switchboard::Request<&str, u32>> = Topic::new();
    for (name, price) in [("acme", 120), ("globex", 95), ("initech", 130)] {
        suppliers.subscribe_endpoint(switchboard::Endpoint::from_fn(
            move |m: Message<switchboard::Request<&str, u32>>| {
                let _ = m.into_payload().reply_as(name, price);
                Ok(())
            },
        ));
    }
    let auction = switchboard::ScatterGather::new(&suppliers);
    let quotes = auction
        .scatter(
            "10 widgets",
            switchboard::Completion::within(Duration::from_secs(1)).first(2),
        )
        .unwrap();
    println!("   completed by: {:?}", quotes.completed());
    for r in quotes.replies() {
        println!("   {} quoted {}", r.responder().unwrap_or("?"), r.body());
    }

    println!("\nThat is the tour. See examples/ for each pattern in depth.");
}
