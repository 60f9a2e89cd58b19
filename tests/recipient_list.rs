//! RecipientList: routing by code and by attribute, run-time changes, every outcome, policies.

mod common;

use common::{panics, Bombs};

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use switchboard::{
    DeliverError, Endpoint, ManualClock, Message, OnFailure, Outcome, Queue, RecipientList,
    RecipientListError, Route, Topic, UnknownRecipients, RECIPIENTS_ATTR,
};

fn drain<T>(q: &Queue<T>) -> Vec<T> {
    q.try_iter().map(Message::into_payload).collect()
}

#[test]
fn smoke() {
    let (a, b) = (Queue::unbounded(), Queue::unbounded());
    let list = RecipientList::new(Route::all());
    list.add("a", &a);
    list.add("b", &b);
    let report = list.send(7).unwrap();
    assert!(report.is_complete());
    assert_eq!(report.len(), 2);
    assert_eq!(drain(&a), [7]);
    assert_eq!(drain(&b), [7]);
}

#[test]
fn route_by_code() {
    let (eu, us, vip) = (Queue::unbounded(), Queue::unbounded(), Queue::unbounded());
    let route = Route::from_fn(|m: &Message<(String, u32)>| {
        let (region, amount) = m.payload();
        let mut names = vec![region.clone()];
        if *amount > 1000 {
            names.push("vip".to_owned());
        }
        names
    });
    let list = RecipientList::builder()
        .route(route)
        .recipient("eu", &eu)
        .recipient("us", &us)
        .recipient("vip", &vip)
        .build();
    list.send(("eu".to_owned(), 10)).unwrap();
    list.send(("us".to_owned(), 5000)).unwrap();
    let r = list.send(("eu".to_owned(), 2000)).unwrap();
    assert_eq!(r.delivered_to().collect::<Vec<_>>(), ["eu", "vip"]);
    assert_eq!(drain(&eu).len(), 2);
    assert_eq!(drain(&us).len(), 1);
    assert_eq!(
        drain(&vip).iter().map(|p| p.1).collect::<Vec<_>>(),
        [5000, 2000]
    );
}

#[test]
fn route_by_attribute() {
    let (a, b, c) = (Queue::unbounded(), Queue::unbounded(), Queue::unbounded());
    let list = RecipientList::new(Route::by_attribute(RECIPIENTS_ATTR));
    list.add("a", &a);
    list.add("b", &b);
    list.add("c", &c);
    // A string list, a single string, nothing, a wrong type.
    list.send(Message::new(1).with_attr("recipients", ["a", "c"]))
        .unwrap();
    list.send(Message::new(2).with_attr("recipients", "b"))
        .unwrap();
    assert!(list.send(Message::new(3)).unwrap().is_empty());
    assert!(list
        .send(Message::new(4).with_attr("recipients", 5))
        .unwrap()
        .is_empty());
    assert_eq!(
        (drain(&a), drain(&b), drain(&c)),
        (vec![1], vec![2], vec![1])
    );
}

#[test]
fn each_recipient_once_and_metadata_shared() {
    let a = Queue::unbounded();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    let list = RecipientList::new(Route::to(["a", "f", "a", "f"]));
    list.add("a", &a);
    list.add(
        "f",
        Endpoint::from_fn(move |m: Message<Arc<String>>| {
            log.lock().unwrap().push(m);
            Ok(())
        }),
    );
    let payload = Arc::new("big".to_owned());
    let msg = Message::new(Arc::clone(&payload)).with_attr("k", "v");
    let id = msg.id();
    let report = list.send(msg).unwrap();
    assert_eq!(report.len(), 2);
    let got = a.try_recv().unwrap();
    assert!(a.try_recv().is_err());
    let f = seen.lock().unwrap().pop().unwrap();
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!((got.id(), f.id()), (id, id));
    assert!(Arc::ptr_eq(got.payload(), &payload) && Arc::ptr_eq(f.payload(), &payload));
    assert_eq!(got.attr("k"), f.attr("k"));
}

#[test]
fn add_remove_at_run_time() {
    let list: RecipientList<u64> = RecipientList::new(Route::all());
    let sent = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let queues: Vec<Queue<u64>> = (0..8).map(|_| Queue::unbounded()).collect();
    thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let r = list.send(i).unwrap();
                    assert_eq!(r.failed(), 0);
                    sent.fetch_add(r.delivered(), Ordering::Relaxed);
                    i += 1;
                }
            });
        }
        for round in 0..200 {
            let k = round % queues.len();
            list.add(format!("q{k}"), &queues[k]);
            if round % 3 == 0 {
                list.remove(&format!("q{}", (k + 3) % queues.len()));
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
    let received: usize = queues.iter().map(Queue::len).sum();
    assert_eq!(received, sent.load(Ordering::Relaxed));

    // After a removal, the next send does not reach it.
    let names = list.names();
    let gone = names[0].clone();
    let before: Vec<usize> = queues.iter().map(Queue::len).collect();
    list.remove(&gone);
    let r = list.send(1).unwrap();
    assert!(r.get(&gone).is_none());
    assert_eq!(r.delivered(), names.len() - 1);
    let after: usize = queues.iter().map(Queue::len).sum();
    assert_eq!(after, before.iter().sum::<usize>() + names.len() - 1);
}

#[test]
fn every_outcome() {
    let ok = Queue::unbounded();
    let full = Queue::bounded(1);
    full.send(0).unwrap();
    let closed = Queue::unbounded();
    closed.close();
    let picky = Endpoint::from_fn(|m: Message<i32>| Err(DeliverError::rejected(m, "no thanks")));
    let list = RecipientList::new(Route::to(["ok", "full", "closed", "picky", "ghost"]));
    list.add("ok", &ok);
    list.add("full", &full);
    list.add("closed", &closed);
    list.add("picky", picky);
    let r = list.try_send(1).unwrap();
    let got: Vec<(String, Outcome)> = r.iter().map(|(n, o)| (n.to_owned(), o.clone())).collect();
    assert_eq!(
        got,
        [
            ("ok".to_owned(), Outcome::Delivered),
            ("full".to_owned(), Outcome::Full),
            ("closed".to_owned(), Outcome::Closed),
            ("picky".to_owned(), Outcome::Rejected("no thanks".into())),
            ("ghost".to_owned(), Outcome::Unknown),
        ]
    );
    assert_eq!(
        (r.delivered(), r.failed(), r.unknown(), r.skipped()),
        (1, 3, 1, 0)
    );
    assert_eq!(Outcome::Unknown.to_string(), "unknown name");
    // With a timeout, a full recipient is still full once the time is up.
    let r = list
        .send_timeout(2, std::time::Duration::from_millis(5))
        .unwrap();
    assert_eq!(r.get("full"), Some(&Outcome::Full));
}

#[test]
fn unknown_names_skip_or_error() {
    let a = Queue::unbounded();
    let skip = RecipientList::new(Route::to(["a", "nobody"]));
    skip.add("a", &a);
    let r = skip.send(1).unwrap();
    assert_eq!(r.get("nobody"), Some(&Outcome::Unknown));
    assert_eq!(drain(&a), [1]);

    let strict = RecipientList::builder()
        .route(Route::to(["a", "nobody"]))
        .unknown(UnknownRecipients::Error)
        .recipient("a", &a)
        .build();
    let err = strict.send(2).unwrap_err();
    assert!(matches!(&err, RecipientListError::UnknownRecipient { name, .. } if name == "nobody"));
    assert_eq!(err.to_string(), "unknown recipient nobody");
    assert!(format!("{err:?}").starts_with("UnknownRecipient"));
    assert_eq!(err.into_inner().into_payload(), 2);
    assert!(
        a.is_empty(),
        "nobody gets the message under the error policy"
    );
}

#[test]
fn stop_or_continue_on_failure() {
    let (a, c) = (Queue::unbounded(), Queue::unbounded());
    let closed = Queue::unbounded();
    closed.close();
    let build = |policy| {
        RecipientList::builder()
            .route(Route::to(["a", "b", "c", "ghost"]))
            .on_failure(policy)
            .recipient("a", &a)
            .recipient("b", &closed)
            .recipient("c", &c)
            .build()
    };
    let r = build(OnFailure::Continue).send(1).unwrap();
    assert_eq!(r.delivered(), 2);
    assert_eq!(r.get("b"), Some(&Outcome::Closed));
    assert_eq!((drain(&a), drain(&c)), (vec![1], vec![1]));

    let err = build(OnFailure::Stop).send(2).unwrap_err();
    let report = err.report().unwrap().clone();
    assert_eq!(report.get("a"), Some(&Outcome::Delivered));
    assert_eq!(report.get("b"), Some(&Outcome::Closed));
    assert_eq!(report.get("c"), Some(&Outcome::Skipped));
    // A chosen name the list does not hold stays unknown, past the stop too (documented).
    assert_eq!(report.get("ghost"), Some(&Outcome::Unknown));
    assert!(err
        .to_string()
        .starts_with("send stopped at a failing recipient"));
    assert_eq!(err.into_inner().into_payload(), 2);
    assert_eq!((drain(&a), drain(&c)), (vec![2], vec![]));
}

/// Under `Continue`, a message no recipient took comes back to the sender (not dropped); one
/// that some took does not (a retry would give them a duplicate).
#[test]
fn a_message_no_recipient_took_is_handed_back() {
    let full = Queue::bounded(1);
    full.send(0).unwrap();
    let closed = Queue::unbounded();
    closed.close();
    let list = RecipientList::new(Route::to(["full", "closed", "ghost"]));
    list.add("full", &full);
    list.add("closed", &closed);
    let err = list.try_send(7).unwrap_err();
    assert!(
        matches!(err, RecipientListError::Undelivered { .. }),
        "{err:?}"
    );
    let report = err.report().unwrap().clone();
    assert_eq!(report.get("full"), Some(&Outcome::Full));
    assert_eq!(report.get("closed"), Some(&Outcome::Closed));
    assert_eq!(report.get("ghost"), Some(&Outcome::Unknown));
    assert_eq!(
        err.to_string(),
        "no recipient took the message: delivering to a full endpoint"
    );
    assert!(format!("{err:?}").starts_with("Undelivered"));
    assert_eq!(err.into_inner().into_payload(), 7);
    // Blocking sends too, once the time is up.
    let err = list
        .send_timeout(8, std::time::Duration::from_millis(5))
        .unwrap_err();
    assert_eq!(err.into_inner().into_payload(), 8);
    assert_eq!(drain(&full), [0], "the full queue got nothing more");

    // One recipient took it: the report says who failed, and the message is not handed back.
    let ok = Queue::unbounded();
    let some = RecipientList::new(Route::to(["closed", "ok"]));
    some.add("closed", &closed);
    some.add("ok", &ok);
    let r = some.try_send(9).unwrap();
    assert_eq!((r.delivered(), r.failed()), (1, 1));
    assert_eq!(drain(&ok), [9]);

    // A route that chose only unknown names under `Skip` failed nowhere: `Ok`. So did a topic
    // without subscribers: it took the message (publishing to nobody is not an error).
    let empty_topic: Topic<i32> = Topic::new();
    let quiet = RecipientList::new(Route::to(["ghost", "empty", "closed"]));
    quiet.add("empty", &empty_topic);
    quiet.add("closed", &closed);
    let r = quiet.try_send(10).unwrap();
    assert_eq!((r.unknown(), r.delivered(), r.failed()), (1, 1, 1));
    full.send(0).unwrap();
    let beside_full = RecipientList::new(Route::all());
    beside_full.add("empty", &empty_topic);
    beside_full.add("full", &full);
    let r = beside_full.try_send(11).unwrap();
    assert_eq!(r.get("empty"), Some(&Outcome::Delivered));
    assert_eq!(r.get("full"), Some(&Outcome::Full));
    let unknown = RecipientList::new(Route::to(["ghost"]));
    unknown.add("ok", &ok);
    assert_eq!(unknown.try_send(11).unwrap().unknown(), 1);
}

/// A closure endpoint that counts its calls.
fn counting(calls: &Arc<AtomicUsize>) -> Endpoint<u32> {
    let calls = Arc::clone(calls);
    Endpoint::from_fn(move |_m: Message<u32>| {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok(())
    })
}

/// A list on a manual clock, with a counting closure "f" and a queue "q" on the same clock.
fn clocked_list() -> (
    ManualClock,
    Arc<AtomicUsize>,
    Queue<u32>,
    RecipientList<u32>,
) {
    let clock = ManualClock::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let q: Queue<u32> = Queue::builder().clock(clock.clone()).build();
    let list = RecipientList::builder()
        .clock(clock.clone())
        .recipient("f", counting(&calls))
        .recipient("q", &q)
        .build();
    (clock, calls, q, list)
}

/// A message stamped by a queue on `clock`, with `ttl` to live from now.
fn stamped(clock: &ManualClock, payload: u32, ttl: Duration) -> Message<u32> {
    let source: Queue<u32> = Queue::builder().clock(clock.clone()).build();
    source.send(Message::new(payload).with_ttl(ttl)).unwrap();
    source.recv().unwrap()
}

#[test]
fn an_expired_message_never_reaches_a_closure_recipient() {
    let (clock, calls, q, list) = clocked_list();
    let m = stamped(&clock, 7, Duration::from_millis(10));

    let report = list.send(m.clone()).unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(drain(&q), [7]);

    clock.advance(Duration::from_millis(10));
    let report = list.send(m).unwrap();
    assert_eq!(report.get("f"), Some(&Outcome::Expired));
    assert_eq!(report.expired(), 1);
    assert_eq!(report.failed(), 0, "expiry is not the recipient's failure");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the closure was not called"
    );
    // The queue took it with no time left, and expired it by its own rules.
    assert_eq!(report.get("q"), Some(&Outcome::Delivered));
    assert!(q.try_recv().is_err());
    assert_eq!(q.stats().expired, 1);

    // A message no queue or topic stamped has not started its time: it goes through, however
    // far the clock moves...
    clock.advance(Duration::from_secs(3600));
    let report = list
        .send(Message::new(8).with_ttl(Duration::from_millis(1)))
        .unwrap();
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(drain(&q), [8]);
    // ...but one with no time at all is expired anywhere.
    let report = list.send(Message::new(9).with_ttl(Duration::ZERO)).unwrap();
    assert_eq!(report.get("f"), Some(&Outcome::Expired));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn a_list_without_a_clock_judges_only_a_zero_time_to_live() {
    // The list cannot tell which clock stamped a message: without one of its own it leaves a
    // message with time left alone, however far the stamping (manual) clock has moved.
    let clock = ManualClock::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let list = RecipientList::builder()
        .recipient("f", counting(&calls))
        .build();
    let m = stamped(&clock, 1, Duration::from_millis(1));
    clock.advance(Duration::from_secs(60));
    assert!(list.send(m).unwrap().is_complete());
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let report = list.send(Message::new(2).with_ttl(Duration::ZERO)).unwrap();
    assert_eq!(report.expired(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn an_expired_message_handed_back_keeps_its_time_to_live() {
    let clock = ManualClock::new();
    let calls = Arc::new(AtomicUsize::new(0));
    let full: Queue<u32> = Queue::bounded(0);
    let list = RecipientList::builder()
        .clock(clock.clone())
        .recipient("a", &full)
        .recipient("b", counting(&calls))
        .build();
    let ttl = Duration::from_secs(5);
    let m = stamped(&clock, 3, ttl);
    clock.advance(ttl);
    let err = list.try_send(m).unwrap_err();
    let report = err.report().unwrap();
    assert_eq!(report.get("a"), Some(&Outcome::Full));
    assert_eq!(report.get("b"), Some(&Outcome::Expired));
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let back = err.into_inner();
    assert_eq!(back.ttl(), Some(ttl), "not the zero the queue was offered");
    assert_eq!(back.into_payload(), 3);
}

#[test]
fn a_topic_feeding_a_list_expires_for_its_closures_too() {
    // The topic finds the message expired and hands its endpoint (the list) a copy with no time
    // left; the list must not call its closure with it, as the topic would not.
    let (clock, calls, q, list) = clocked_list();
    let topic: Topic<u32> = Topic::builder().clock(clock.clone()).build();
    topic.subscribe_endpoint(&list);
    topic
        .publish(Message::new(1).with_ttl(Duration::ZERO))
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    assert!(q.try_recv().is_err());
    assert_eq!(q.stats().expired, 1);
    // A live one reaches both.
    topic
        .publish(Message::new(2).with_ttl(Duration::from_secs(1)))
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(drain(&q), [2]);
}

#[test]
fn chains_with_topics() {
    // A topic feeds a list, the list feeds a topic and a queue.
    let upstream: Topic<&str> = Topic::new();
    let downstream = Topic::new();
    let sub = downstream.subscribe();
    let q = Queue::unbounded();
    let list: RecipientList<&str> = RecipientList::new(Route::by_attribute("to"));
    list.add("topic", &downstream);
    list.add("queue", &q);
    upstream.subscribe_endpoint(&list);
    let report = upstream
        .publish(Message::new("x").with_attr("to", ["topic", "queue"]))
        .unwrap();
    assert_eq!(report.delivered, 1);
    assert_eq!(sub.try_recv().unwrap().into_payload(), "x");
    assert_eq!(q.try_recv().unwrap().into_payload(), "x");

    // As an endpoint, a list's failures surface as delivery errors.
    let e = Endpoint::from(&list);
    assert!(e.is_recipient_list());
    q.close();
    let err = e
        .try_deliver(Message::new("y").with_attr("to", "queue"))
        .unwrap_err();
    assert!(err.is_closed());
    let strict = RecipientList::<u8>::builder()
        .route(Route::to(["none"]))
        .unknown(UnknownRecipients::Error)
        .build();
    let err = Endpoint::from(strict).try_deliver(1).unwrap_err();
    assert_eq!(err.reason(), Some("unknown recipient none"));
}

#[test]
fn drops() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    #[derive(Clone)]
    struct D;
    impl Drop for D {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::Relaxed);
        }
    }
    let (a, b) = (Queue::unbounded(), Queue::bounded(0));
    let list = RecipientList::new(Route::to(["a", "b", "x"]));
    list.add("a", &a);
    list.add("b", &b);
    list.try_send(D).unwrap(); // a gets a clone, b (full) drops its copy
    assert_eq!(DROPS.load(Ordering::Relaxed), 1);
    drop(a.try_recv().unwrap());
    assert_eq!(DROPS.load(Ordering::Relaxed), 2);
}

#[test]
fn static_route_follows_the_set_in_route_order_without_repeats() {
    let (a, b) = (Queue::unbounded(), Queue::unbounded());
    let list: RecipientList<u8> = RecipientList::new(Route::to(["b", "x", "b", "a"]));
    list.add("a", &a);
    let outcomes = |r: &switchboard::RecipientReport| -> Vec<(String, Outcome)> {
        r.iter().map(|(n, o)| (n.to_owned(), o.clone())).collect()
    };
    let r = list.send(1).unwrap();
    assert_eq!(
        outcomes(&r),
        [
            ("b".to_owned(), Outcome::Unknown),
            ("x".to_owned(), Outcome::Unknown),
            ("a".to_owned(), Outcome::Delivered),
        ]
    );
    // Added at run time: the next send reaches it, in route order.
    list.add("b", &b);
    let r = list.send(2).unwrap();
    assert_eq!(
        r.iter().map(|(n, _)| n).collect::<Vec<_>>(),
        ["b", "x", "a"]
    );
    assert_eq!((r.delivered(), r.unknown()), (2, 1));
    list.remove("a");
    let r = list.send(3).unwrap();
    assert_eq!(r.get("a"), Some(&Outcome::Unknown));
    assert_eq!(drain(&a), [1, 2]);
    assert_eq!(drain(&b), [2, 3]);

    // The attribute route drops repeats of known and unknown names alike.
    let by_attr: RecipientList<u8> = RecipientList::new(Route::by_attribute("to"));
    by_attr.add("a", &a);
    let r = by_attr
        .send(Message::new(4).with_attr("to", ["x", "a", "x", "a"]))
        .unwrap();
    assert_eq!(
        outcomes(&r),
        [
            ("x".to_owned(), Outcome::Unknown),
            ("a".to_owned(), Outcome::Delivered),
        ]
    );
    assert_eq!(drain(&a), [4]);
}

/// A closure recipient that sends the message it got back through its own list closes a loop,
/// as one that publishes it back to its own topic does: that send is refused and hands the
/// message back, instead of recursing until the stack overflows (found by review).
#[test]
fn a_closure_sending_back_through_its_own_list_is_refused_as_a_loop() {
    let q = Queue::unbounded();
    let list = RecipientList::new(Route::all());
    list.add("q", &q);
    let handle = list.clone();
    let refused = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&refused);
    list.add(
        "echo",
        Endpoint::from_fn(move |m: Message<u32>| {
            match handle.send(m) {
                Err(RecipientListError::Undelivered { error, .. }) if error.is_rejected() => {
                    seen.lock().unwrap().push(error.into_inner().into_payload());
                }
                other => panic!("the loop went through: {:?}", other.is_ok()),
            }
            Ok(())
        }),
    );
    assert!(list.send(6).unwrap().is_complete());
    assert_eq!(drain(&q), [6]);
    assert_eq!(*refused.lock().unwrap(), [6]);
    // The same message sent again later is no loop.
    let m = Message::new(7);
    list.remove("echo");
    list.send(m.clone()).unwrap();
    list.send(m).unwrap();
    assert_eq!(drain(&q), [7, 7]);
}

/// What the README promises, exactly: a message that no recipient took because they failed
/// comes back; one routed only to names the list does not hold is skipped and reported under
/// the default policy (not handed back), and refused under `UnknownRecipients::Error` (found by
/// review: the README said any message no recipient took comes back).
#[test]
fn a_message_routed_only_to_unknown_names_is_skipped_unless_refused() {
    let skip: RecipientList<u32> = RecipientList::new(Route::to(["nobody"]));
    let report = skip.send(1).unwrap();
    assert_eq!((report.delivered(), report.unknown()), (0, 1));
    assert_eq!(report.get("nobody"), Some(&Outcome::Unknown));

    let refuse: RecipientList<u32> = RecipientList::builder()
        .route(Route::to(["nobody"]))
        .unknown(UnknownRecipients::Error)
        .build();
    assert_eq!(refuse.send(2).unwrap_err().into_inner().into_payload(), 2);

    let closed = Queue::unbounded();
    closed.close();
    let failing: RecipientList<u32> = RecipientList::new(Route::to(["closed"]));
    failing.add("closed", &closed);
    let err = failing.send(3).unwrap_err();
    assert!(matches!(err, RecipientListError::Undelivered { .. }));
    assert_eq!(err.into_inner().into_payload(), 3);
}

/// A send whose copy for one recipient drops in the middle of the fan-out (a failure after the
/// first, whose copy the list keeps for the error; a copy a chained topic's full `DropNewest`
/// subscription refuses), with a payload whose drop panics, still delivers to the later
/// recipients: the drops wait until every recipient had its copy (found by an audit of payload
/// drops: the panic ended the send there, and the later recipients missed it).
#[test]
fn a_panicking_drop_of_a_failed_copy_loses_no_later_delivery() {
    for chained in [false, true] {
        let bombs = Bombs::new(2, 1);
        let (a, b, c) = (Queue::unbounded(), Queue::unbounded(), Queue::unbounded());
        a.close();
        b.close();
        let list = RecipientList::new(Route::all());
        list.add("a", &a);
        if chained {
            let topic = Topic::new();
            let full = topic.subscribe_with(
                switchboard::SubscribeOptions::new()
                    .capacity(1)
                    .overflow(switchboard::Overflow::DropNewest),
            );
            topic.publish(bombs.make(0)).unwrap();
            std::mem::forget(full); // it stays full
            list.add("b", topic);
        } else {
            list.add("b", &b);
        }
        list.add("c", &c);
        assert!(panics(|| list.send(bombs.make(1))), "chained {chained}");
        let m = c.try_recv().expect("the last recipient got its copy");
        assert_eq!(m.payload().id, 1);
        assert!(panics(|| drop(m)));
        assert_eq!(bombs.dropped(1), 3, "chained {chained}");
    }
}

/// Found by mutation testing (naming the last unknown name passed every test): the error names
/// the first unknown name the route chose, as documented.
#[test]
fn the_error_names_the_first_unknown_recipient() {
    let a: Queue<u32> = Queue::unbounded();
    let strict = RecipientList::builder()
        .route(Route::to(["ghost1", "a", "ghost2"]))
        .unknown(UnknownRecipients::Error)
        .recipient("a", &a)
        .build();
    let err = strict.send(1).unwrap_err();
    assert!(
        matches!(&err, RecipientListError::UnknownRecipient { name, .. } if name == "ghost1"),
        "{err:?}"
    );
    assert!(a.is_empty());
}

/// Bounds this binary in time: a hanging test fails the run (see `common::start_watchdog`).
#[test]
fn _watchdog() {
    common::start_watchdog();
}

/// Past the size where the send's check for repeated names moves from a scan to a hash set:
/// a route naming 80 recipients twice over, and unknown names repeated, reaches each
/// recipient once and reports each name once, in route order.
#[test]
fn a_route_naming_many_recipients_with_repeats_delivers_each_once() {
    let queues: Vec<Queue<u32>> = (0..80).map(|_| Queue::unbounded()).collect();
    let list = RecipientList::new(Route::from_fn(|_m: &Message<u32>| {
        let names = (0..80).chain(0..80).map(|k| format!("q{k:02}"));
        names
            .chain(["ghost", "ghost", "phantom", "ghost"].map(String::from))
            .collect::<Vec<_>>()
    }));
    for (k, q) in queues.iter().enumerate() {
        list.add(format!("q{k:02}"), q);
    }
    let report = list.send(1).unwrap();
    assert_eq!(
        (report.delivered(), report.unknown(), report.len()),
        (80, 2, 82)
    );
    assert!(queues.iter().all(|q| q.len() == 1));
    let names: Vec<&str> = report.iter().map(|(n, _)| n).collect();
    let want: Vec<String> = (0..80).map(|k| format!("q{k:02}")).collect();
    assert_eq!(
        names[..80],
        want.iter().map(String::as_str).collect::<Vec<_>>()[..]
    );
    assert_eq!(names[80..], ["ghost", "phantom"]);
}

/// An endpoint over a list delivers as the list's `send` does: once one recipient took the
/// message, a failing other does not make it an error that hands the message back (a retry
/// would duplicate it); when none took it, the message comes back.
#[test]
fn an_endpoint_over_a_list_succeeds_when_some_recipient_took_the_message() {
    let (a, closed) = (Queue::<u32>::unbounded(), Queue::unbounded());
    closed.close();
    let list = RecipientList::new(Route::all());
    list.add("a", &a);
    list.add("closed", &closed);
    let endpoint = Endpoint::from(&list);
    endpoint.deliver(7).unwrap();
    endpoint.try_deliver(8).unwrap();
    assert_eq!(drain(&a), [7, 8]);
    assert!(list.remove("a").is_some());
    let err = endpoint.deliver(9).unwrap_err();
    assert!(matches!(err, DeliverError::Closed(_)), "{err:?}");
    assert_eq!(err.into_inner().into_payload(), 9);
    let strict = RecipientList::builder()
        .route(Route::to(["nobody"]))
        .unknown(UnknownRecipients::Error)
        .build();
    let err = Endpoint::from(&strict).deliver(10).unwrap_err();
    assert!(
        matches!(&err, DeliverError::Rejected { reason, .. } if reason == "unknown recipient nobody"),
        "{err:?}"
    );
    // The same mapping, for code that sends to the list and wants an endpoint's error.
    let err = DeliverError::from(strict.send(11).unwrap_err());
    assert!(
        matches!(&err, DeliverError::Rejected { reason, .. } if reason == "unknown recipient nobody"),
        "{err:?}"
    );
    assert_eq!(err.into_inner().into_payload(), 11);
}

/// Every builder has the defaults through `Default`, as `QueueBuilder` and `TopicBuilder` do
/// (found by review: the list's did not): a list of no recipients, routing to all.
#[test]
fn the_list_builder_defaults_are_its_default() {
    let q: Queue<u8> = Queue::unbounded();
    let list = switchboard::RecipientListBuilder::default()
        .recipient("q", &q)
        .build();
    list.send(1).unwrap();
    assert_eq!(drain(&q), [1]);
}

/// A cloned builder makes a list of its own, routing alike to the same recipients.
#[test]
fn a_cloned_list_builder_builds_a_list_alike() {
    let (a, b) = (Queue::<u32>::unbounded(), Queue::<u32>::unbounded());
    let builder = RecipientList::builder()
        .route(Route::from_fn(|m: &Message<u32>| {
            if m.payload() % 2 == 0 {
                vec!["even".to_string()]
            } else {
                vec!["odd".to_string()]
            }
        }))
        .recipient("even", &a)
        .recipient("odd", &b);
    let (one, two) = (builder.clone().build(), builder.build());
    one.send(2).unwrap();
    two.send(3).unwrap();
    two.remove("odd");
    assert_eq!(
        one.names().len(),
        2,
        "removing from one list leaves the other"
    );
    assert_eq!(a.try_recv().map(Message::into_payload), Ok(2));
    assert_eq!(b.try_recv().map(Message::into_payload), Ok(3));
}

/// Two recipients of one name on the builder: the later replaces the earlier (as `add` does).
#[test]
fn a_later_builder_recipient_of_the_same_name_replaces_the_earlier() {
    let (old, new) = (Queue::unbounded(), Queue::unbounded());
    let list = RecipientList::builder()
        .recipient("a", &old)
        .recipient("a", &new)
        .build();
    assert_eq!(list.names(), ["a"]);
    assert!(list.send(1).unwrap().is_complete());
    assert!(old.is_empty());
    assert_eq!(new.try_recv().unwrap().into_payload(), 1);
}
