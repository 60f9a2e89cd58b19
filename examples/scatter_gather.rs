//! Scatter-gather: a quote auction. Five suppliers subscribe to a request-for-quote topic; the
//! buyer takes the best price that arrives within 100 ms. One supplier is out of stock (an error
//! reply), one is too slow: its quote arrives after the deadline and is counted as late, never
//! mixed into the next auction.
//!
//! Run with `cargo run --example scatter_gather`.

use std::thread;
use std::time::Duration;

use switchboard::{
    Completion, Endpoint, Message, RecipientList, Request, Route, ScatterGather, Topic,
};

#[derive(Clone, Debug)]
struct Rfq {
    item: &'static str,
    quantity: u32,
}

type Quote = Result<u32, String>; // a price in cents, or why not

fn main() {
    let rfqs: Topic<Request<Rfq, Quote>> = Topic::new();
    let suppliers = [
        ("acme", Duration::from_millis(5), Ok(1250)),
        ("globex", Duration::from_millis(10), Ok(1190)),
        (
            "initech",
            Duration::from_millis(2),
            Err("out of stock".to_string()),
        ),
        ("umbrella", Duration::from_millis(20), Ok(1320)),
        ("slowpoke", Duration::from_millis(300), Ok(900)), // the best price, too late
    ];
    let handles: Vec<_> = suppliers
        .iter()
        .cloned()
        .map(|(name, delay, quote)| {
            let sub = rfqs.subscribe();
            thread::spawn(move || {
                for m in &sub {
                    let req = m.into_payload();
                    thread::sleep(delay);
                    let unit = quote.clone().map(|p| p * req.body().quantity);
                    if let Err(e) = req.reply_as(name, unit) {
                        println!("   {name}: {e}");
                    }
                }
            })
        })
        .collect();

    let auction = ScatterGather::new(&rfqs);
    let rfq = Rfq {
        item: "widget",
        quantity: 1,
    };
    println!(
        "1. request for quotes on {:?} to {} suppliers, 100 ms deadline",
        rfq.item,
        rfqs.subscriber_count()
    );
    let got = auction
        .scatter(rfq, Completion::within(Duration::from_millis(100)))
        .unwrap();
    println!(
        "2. completed by {:?} after {:?}",
        got.completed(),
        got.elapsed()
    );
    for r in got.replies() {
        println!("   {:>8}: {:?}", r.responder().unwrap(), r.body());
    }
    println!(
        "   {} of {} suppliers did not answer in time",
        got.missing_count(),
        got.expected()
    );

    let best = got.fold(None, |best: Option<(&str, u32)>, r| {
        match (r.body(), best) {
            (Ok(p), Some((_, b))) if *p >= b => best,
            (Ok(p), _) => Some((r.responder().unwrap(), *p)),
            (Err(_), _) => best,
        }
    });
    let (winner, price) = best.unwrap();
    println!("3. best quote: {winner} at {price} cents");

    // The slow supplier answers after the deadline: its quote is late, not mixed into anything.
    let rfq = Rfq {
        item: "gadget",
        quantity: 2,
    };
    let next = auction
        .scatter(rfq, Completion::within(Duration::from_millis(100)).first(2))
        .unwrap();
    println!(
        "4. a second auction, first two replies (an error reply counts too): {:?} (correlation ids {} then {})",
        next.replies()
            .iter()
            .map(|r| (r.responder().unwrap(), r.body().clone()))
            .collect::<Vec<_>>(),
        got.correlation_id(),
        next.correlation_id()
    );
    rfqs.close();
    handles.into_iter().for_each(|h| h.join().unwrap());
    let s = auction.stats();
    println!(
        "5. stats: {} auctions, {} quotes gathered, {} late or unread (the slow quotes, and the rest of auction 2)",
        s.requests, s.replies, s.late
    );

    // Distribution: the buyer picks the suppliers, and the result names who did not reply.
    let list: RecipientList<Request<Rfq, Quote>> =
        RecipientList::new(Route::to(["acme", "globex", "closed-shop"]));
    for (name, price) in [("acme", 1250), ("globex", 1190)] {
        list.add(
            name,
            Endpoint::from_fn(move |m: Message<Request<Rfq, Quote>>| {
                let _ = m.into_payload().reply(Ok(price));
                Ok(())
            }),
        );
    }
    list.add(
        "closed-shop",
        Endpoint::from_fn(|_m: Message<Request<Rfq, Quote>>| Ok(())),
    ); // never answers
    let got = ScatterGather::new(&list)
        .scatter(
            Rfq {
                item: "bolt",
                quantity: 1,
            },
            Completion::within(Duration::from_millis(100)),
        )
        .unwrap();
    println!(
        "6. distribution to chosen suppliers: completed by {:?}, replied {:?}, missing {:?}",
        got.completed(),
        got.responders(),
        got.missing()
    );
}
