//! Scatter-gather and request-reply through chained topics and nested recipient lists: what
//! a request reached, what is awaited, and what is reported (found by review).

use std::thread;
use std::time::Duration;

use switchboard::{
    Completed, Completion, DeliverError, Endpoint, GatherError, Message, OnFailure, Queue,
    RecipientList, Request, RequestError, Requester, Route, ScatterGather, Topic,
};

const LONG: Duration = Duration::from_secs(5);

fn answer(v: u32) -> Endpoint<Request<u32, u32>> {
    Endpoint::from_fn(move |m: Message<Request<u32, u32>>| {
        let _ = m.into_payload().reply(v);
        Ok(())
    })
}

// D1a: a topic chained into a topic with 3 responders: the gather expects 1 and stops at the
// first reply, the other two replies are counted late.
#[test]
fn a_chained_topic_counts_each_subscriber_it_reached() {
    let outer: Topic<Request<u32, u32>> = Topic::new();
    let inner: Topic<Request<u32, u32>> = Topic::new();
    for i in 0..3 {
        inner.subscribe_endpoint(answer(i));
    }
    outer.subscribe_endpoint(&inner);
    let sg = ScatterGather::new(&outer);
    let got = sg.scatter(1, Completion::within(LONG)).unwrap();
    assert_eq!(
        (got.expected(), got.replies().len(), sg.stats().late),
        (3, 3, 0)
    );
}

// D1b: a topic whose only subscription is a chained topic without subscribers reaches nobody.
#[test]
fn a_chained_topic_without_subscribers_is_no_responder() {
    let outer: Topic<Request<u32, u32>> = Topic::new();
    let inner: Topic<Request<u32, u32>> = Topic::new();
    outer.subscribe_endpoint(&inner);
    assert_eq!(
        Requester::new(&outer).request(1, LONG),
        Err(RequestError::NoResponder)
    );
    assert_eq!(
        ScatterGather::new(&outer)
            .scatter(1, Completion::within(LONG))
            .unwrap_err(),
        GatherError::NoResponder
    );
}

// D2: a list whose only recipient is full / refuses: scatter says NoResponder, the Requester
// (same list) says Full / Rejected.
#[test]
fn a_list_scatter_that_only_met_full_or_refusing_recipients_says_so() {
    let q: Queue<Request<u32, u32>> = Queue::bounded(1);
    let _ = Requester::new(&q).request(0, Duration::from_millis(1)); // fills q
    assert_eq!(q.len(), 1);
    let list = RecipientList::new(Route::all());
    list.add("q", &q);
    assert_eq!(
        Requester::new(&list).request(1, Duration::from_millis(10)),
        Err(RequestError::Full)
    );
    assert_eq!(
        ScatterGather::new(&list)
            .scatter(1, Completion::within(Duration::from_millis(10)))
            .unwrap_err(),
        GatherError::Full
    );

    let refusing: RecipientList<Request<u32, u32>> = RecipientList::new(Route::all());
    refusing.add(
        "no",
        Endpoint::from_fn(|m: Message<Request<u32, u32>>| Err(DeliverError::rejected(m, "nope"))),
    );
    assert_eq!(
        Requester::new(&refusing).request(1, LONG),
        Err(RequestError::Rejected("nope".into()))
    );
    assert_eq!(
        ScatterGather::new(&refusing)
            .scatter(1, Completion::within(LONG))
            .unwrap_err(),
        GatherError::Rejected("nope".into())
    );
}

// D3: a nested list under OnFailure::Stop delivered to "x" before stopping. The outer gather
// reports "inner" as unreached (not in expected) yet gathers x's reply, which satisfies
// `expected` and completes the gather `All` before "slow" answers.
#[test]
fn a_nested_list_stopped_midway_counts_what_it_reached_before() {
    let closed: Queue<Request<u32, u32>> = Queue::unbounded();
    closed.close();
    let inner: RecipientList<Request<u32, u32>> = RecipientList::builder()
        .route(Route::to(["x", "y"]))
        .on_failure(OnFailure::Stop)
        .recipient("x", answer(7))
        .recipient("y", &closed)
        .build();
    let slow: Queue<Request<u32, u32>> = Queue::unbounded();
    let outer: RecipientList<Request<u32, u32>> = RecipientList::new(Route::all());
    outer.add("inner", &inner);
    outer.add("slow", &slow);
    let responder = {
        let slow = slow.clone();
        thread::spawn(move || {
            let r = slow.recv_timeout(LONG).unwrap().into_payload();
            thread::sleep(Duration::from_millis(100));
            r.reply(9)
        })
    };
    let got = ScatterGather::new(&outer)
        .scatter(1, Completion::within(LONG))
        .unwrap();
    let _ = responder.join();
    // "inner" reached x before it stopped at y: x's reply is awaited and gathered under
    // "inner", and the gather waits for "slow" too.
    assert_eq!(
        (got.completed(), got.expected()),
        (Completed::All, 2),
        "{got:?}"
    );
    let mut from: Vec<(Option<&str>, u32)> = got
        .replies()
        .iter()
        .map(|r| (r.recipient(), *r.body()))
        .collect();
    from.sort_unstable();
    assert_eq!(from, [(Some("inner"), 7), (Some("slow"), 9)]);
    assert!(
        got.missing().is_empty() && got.unreached().is_empty(),
        "{got:?}"
    );
}

// D4: missing() names a recipient that reached nobody, while is_complete() is true.
#[test]
fn a_recipient_that_reached_nobody_is_unreached_not_missing() {
    let empty: Topic<Request<u32, u32>> = Topic::new();
    let list: RecipientList<Request<u32, u32>> = RecipientList::new(Route::all());
    list.add("a", answer(1));
    list.add("empty", &empty);
    let got = ScatterGather::new(&list)
        .scatter(1, Completion::within(LONG))
        .unwrap();
    assert_eq!(
        (got.completed(), got.expected(), got.is_complete()),
        (Completed::All, 1, true)
    );
    assert!(got.missing().is_empty(), "missing = {:?}", got.missing());
}

// D5: RecipientList (OnFailure::Continue) drops a message no recipient could take.
