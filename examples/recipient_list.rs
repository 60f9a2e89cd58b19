//! Recipient list: route orders by region and priority. Each order goes to its region's
//! warehouse queue; urgent orders also go to an express topic (courier and SMS subscribers); every
//! order goes to an audit closure. Recipients change at run time, and the per-recipient report
//! shows what happened where.
//!
//! Run with `cargo run --example recipient_list`.

use std::sync::{Arc, Mutex};

use switchboard::{
    Endpoint, Message, OnFailure, Queue, RecipientList, Route, Topic, UnknownRecipients,
};

#[derive(Clone, Debug)]
struct Order {
    id: u32,
    region: &'static str,
    urgent: bool,
}

fn main() {
    // The recipients: a queue per region, an express topic, an audit log.
    let eu: Queue<Order> = Queue::builder().name("eu-warehouse").build();
    let us: Queue<Order> = Queue::builder().name("us-warehouse").capacity(1).build();
    let express: Topic<Order> = Topic::new();
    let courier = express.subscribe();
    let sms = express.subscribe();
    let audit_log = Arc::new(Mutex::new(Vec::new()));
    let audit = {
        let log = Arc::clone(&audit_log);
        Endpoint::from_fn(move |m: Message<Order>| {
            log.lock().unwrap().push(m.payload().id);
            Ok(())
        })
    };

    // The route, in code: region, then express if urgent, then audit.
    let route = Route::from_fn(|m: &Message<Order>| {
        let o = m.payload();
        let mut to = vec![o.region];
        if o.urgent {
            to.push("express");
        }
        to.push("audit");
        to
    });
    let list = RecipientList::builder()
        .route(route)
        .recipient("eu", &eu)
        .recipient("us", &us)
        .recipient("express", &express)
        .recipient("audit", audit)
        .build();
    println!("1. recipients: {:?}", list.names());

    let orders = [
        Order {
            id: 1,
            region: "eu",
            urgent: false,
        },
        Order {
            id: 2,
            region: "us",
            urgent: true,
        },
        Order {
            id: 3,
            region: "us",
            urgent: false,
        }, // the US queue holds one: full
        Order {
            id: 4,
            region: "apac",
            urgent: false,
        }, // no APAC warehouse yet
    ];
    println!("2. routing four orders by region and priority (never waiting for room):");
    for o in orders.clone() {
        let report = list.try_send(o.clone()).unwrap();
        println!(
            "   order {} ({}, urgent: {}): {report:?}",
            o.id, o.region, o.urgent
        );
    }
    println!(
        "   eu queue {}, us queue {}, courier {}, sms {}, audit {:?}",
        eu.len(),
        us.len(),
        courier.len(),
        sms.len(),
        audit_log.lock().unwrap()
    );

    // Recipients change at run time: an APAC warehouse opens.
    let apac: Queue<Order> = Queue::builder().name("apac-warehouse").build();
    list.add("apac", &apac);
    let report = list.send(orders[3].clone()).unwrap();
    println!("3. after adding \"apac\": order 4 -> {report:?}");

    // The same routing by attribute: the sender names the recipients.
    let by_attr = RecipientList::builder()
        .route(Route::by_attribute("recipients"))
        .unknown(UnknownRecipients::Error)
        .recipient("eu", &eu)
        .recipient("audit-queue", Queue::<Order>::unbounded())
        .build();
    let order = Order {
        id: 5,
        region: "eu",
        urgent: false,
    };
    let msg = Message::new(order.clone()).with_attr("recipients", ["eu", "audit-queue"]);
    println!(
        "4. by attribute: order 5 -> {:?}",
        by_attr.send(msg).unwrap()
    );
    let typo = Message::new(order).with_attr("recipients", ["eu", "audti-queue"]);
    let err = by_attr.send(typo).unwrap_err();
    println!(
        "   a typo under the error policy: \"{err}\"; nobody got it, the order is handed back"
    );

    // Stop at the first failure instead of carrying on.
    let strict = RecipientList::builder()
        .route(Route::to(["us", "eu"]))
        .on_failure(OnFailure::Stop)
        .recipient("us", &us)
        .recipient("eu", &eu)
        .build();
    let err = strict
        .try_send(Order {
            id: 6,
            region: "us",
            urgent: false,
        })
        .unwrap_err();
    println!(
        "5. stop policy: \"{err}\", report {:?}",
        err.report().unwrap()
    );

    println!(
        "6. queues now: eu {}, us {}, apac {}",
        eu.len(),
        us.len(),
        apac.len()
    );
}
