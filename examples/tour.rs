//! A guided tour of switchboard: each step prints what it shows.
//!
//! Run it with `cargo run --release --example tour`.

use std::thread;
use std::time::Duration;

use switchboard::{ManualClock, Message, Queue, TryRecvError};

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
        for i in 0..1000u32 {
            q.send(i).unwrap();
        }
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
        "   dead letter from {:?}: {} ({} attempts)",
        info.source(),
        info.reason(),
        info.attempts()
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
        "   stats: sent {} received {} acked {} nacked {} abandoned {} lease-expired {} dead-lettered {} expired {}",
        s.sent, s.received, s.acked, s.nacked, s.abandoned, s.lease_expired, s.dead_lettered, s.expired
    );

    step("6. Recipient list: each order goes to the recipients its route names");
    let (eu, us) = (Queue::<&str>::unbounded(), Queue::unbounded());
    let list = switchboard::RecipientList::new(switchboard::Route::by_attribute("recipients"));
    list.add("eu", &eu);
    list.add("us", &us);
    let order = Message::new("order-9").with_attr("recipients", ["eu", "us", "mars"]);
    println!("   report: {:?}", list.send(order).unwrap());

    step("7. Request-reply: the reply comes back through the request, typed");
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
    println!("\nThat is the tour. See examples/ for each pattern in depth.");
}
