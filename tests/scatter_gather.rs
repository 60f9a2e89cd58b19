//! Request-reply and scatter-gather: competing responders, no responders, every completion
//! condition, late replies isolated, concurrent gathers.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use switchboard::{
    Completed, Completion, CorrelationId, Endpoint, GatherError, Message, OnFailure, Overflow,
    Queue, RecipientList, RecvError, Reply, ReplyTo, Request, RequestError, Requester, Route,
    ScatterGather, Service, SubscribeOptions, Topic, UnknownRecipients,
};

use common::{panics, spawn_named, wait_blocked, Bomb, Bombs};

type Quote = Result<u32, String>;

const LONG: Duration = Duration::from_secs(10);

/// Responder threads competing on one queue: reply `f(body)` under the thread's name.
fn responders<Req, Rep>(
    service: &Queue<Request<Req, Rep>>,
    n: usize,
    f: impl Fn(&Req) -> Rep + Send + Sync + Clone + 'static,
) -> Vec<thread::JoinHandle<usize>>
where
    Req: Send + Sync + 'static,
    Rep: Send + 'static,
{
    (0..n)
        .map(|i| {
            let service = service.clone();
            let f = f.clone();
            thread::spawn(move || {
                let mut served = 0;
                for m in &service {
                    let req = m.into_payload();
                    let rep = f(req.body());
                    let _ = req.reply_as(format!("r{i}"), rep);
                    served += 1;
                }
                served
            })
        })
        .collect()
}

/// A closure endpoint that answers at once with `f(body)`.
fn instant<Req, Rep>(f: impl Fn(&Req) -> Rep + Send + Sync + 'static) -> Endpoint<Request<Req, Rep>>
where
    Req: 'static,
    Rep: 'static,
{
    Endpoint::from_fn(move |m: Message<Request<Req, Rep>>| {
        let req = m.into_payload();
        let rep = f(req.body());
        let _ = req.reply(rep);
        Ok(())
    })
}

#[test]
fn request_reply_one_responder() {
    let service: Queue<Request<u32, u32>> = Queue::unbounded();
    let workers = responders(&service, 1, |x| x + 1);
    let requester = Requester::new(&service);
    for i in 0..100 {
        assert_eq!(requester.request(i, LONG).unwrap(), i + 1);
    }
    let reply = requester
        .request_reply_deadline(7, Instant::now() + LONG)
        .unwrap();
    assert_eq!((reply.responder(), *reply.body()), (Some("r0"), 8));
    service.close();
    let served: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(served, 101);
    let s = requester.stats();
    assert_eq!(
        (s.requests, s.replies, s.late, s.timed_out),
        (101, 101, 0, 0)
    );
}

#[test]
fn request_reply_three_competing_responders() {
    let service: Queue<Request<u64, u64>> = Queue::unbounded();
    let workers = responders(&service, 3, |x| x * 3);
    let requester = Requester::new(&service);
    thread::scope(|s| {
        for t in 0..3u64 {
            let requester = requester.clone();
            s.spawn(move || {
                for i in 0..200 {
                    let x = t * 1000 + i;
                    assert_eq!(requester.request(x, LONG).unwrap(), x * 3);
                }
            });
        }
    });
    service.close();
    let served: Vec<usize> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    assert_eq!(served.iter().sum::<usize>(), 600);
    assert_eq!(requester.stats().replies, 600);
}

#[test]
fn first_reply_wins_the_rest_are_late() {
    let topic: Topic<Request<u8, u8>> = Topic::new();
    let subs: Vec<_> = (0..3).map(|_| topic.subscribe()).collect();
    let requester = Requester::new(&topic);
    let handles: Vec<_> = subs
        .into_iter()
        .map(|sub| {
            thread::spawn(move || {
                let req = sub.recv().unwrap().into_payload();
                req.reply(1).is_ok()
            })
        })
        .collect();
    assert_eq!(requester.request(0, LONG), Ok(1));
    let accepted = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|ok| *ok)
        .count();
    // Replies that came before the requester closed its inbox were accepted but went unread.
    assert!((1..=3).contains(&accepted));
    assert_eq!(requester.stats().late, 2);
}

#[test]
fn no_responders_fail_at_once() {
    let started = Instant::now();
    // A topic without subscribers.
    let topic: Topic<Request<u8, u8>> = Topic::new();
    assert_eq!(
        Requester::new(&topic).request(1, LONG),
        Err(RequestError::NoResponder)
    );
    let err = ScatterGather::new(&topic)
        .scatter(1, Completion::within(LONG))
        .unwrap_err();
    assert_eq!(err, GatherError::NoResponder);
    // A closed queue, a closed topic.
    let closed: Queue<Request<u8, u8>> = Queue::unbounded();
    closed.close();
    let requester = Requester::new(&closed);
    assert_eq!(requester.request(1, LONG), Err(RequestError::NoResponder));
    assert_eq!(requester.stats().no_responder, 1);
    topic.close();
    assert_eq!(
        Requester::new(&topic).request(1, LONG),
        Err(RequestError::NoResponder)
    );
    // A recipient list whose route chose nobody.
    let list: RecipientList<Request<u8, u8>> = RecipientList::new(Route::by_attribute("to"));
    list.add("a", instant(|x: &u8| *x));
    assert_eq!(
        Requester::new(&list).request(1, LONG),
        Err(RequestError::NoResponder)
    );
    assert_eq!(
        ScatterGather::new(&list)
            .scatter(1, Completion::within(LONG))
            .unwrap_err(),
        GatherError::NoResponder
    );
    // Responders that drop the request without replying.
    let sub = {
        let t: Topic<Request<u8, u8>> = Topic::new();
        let sub = t.subscribe();
        let h = thread::spawn(move || drop(sub.recv().unwrap()));
        let requester = Requester::new(&t);
        assert_eq!(requester.request(1, LONG), Err(RequestError::Unanswered));
        assert_eq!(requester.stats().unanswered, 1);
        h
    };
    sub.join().unwrap();
    let silent = Endpoint::from_fn(|_m: Message<Request<u8, u8>>| Ok(()));
    assert_eq!(
        Requester::new(silent).request(1, LONG),
        Err(RequestError::Unanswered)
    );
    assert!(
        started.elapsed() < LONG / 2,
        "no case waited for its deadline"
    );
}

#[test]
fn refused_requests() {
    let full: Queue<Request<u8, u8>> = Queue::bounded(0);
    assert_eq!(
        Requester::new(&full).request(1, Duration::from_millis(5)),
        Err(RequestError::Full)
    );
    let picky = Endpoint::from_fn(|m: Message<Request<u8, u8>>| {
        Err(switchboard::DeliverError::rejected(m, "closed for lunch"))
    });
    let err = Requester::new(picky.clone()).request(1, LONG).unwrap_err();
    assert_eq!(err, RequestError::Rejected("closed for lunch".into()));
    assert_eq!(err.to_string(), "request rejected: closed for lunch");
    assert_eq!(
        ScatterGather::new(picky)
            .scatter(1, Completion::within(LONG))
            .unwrap_err(),
        GatherError::Rejected("closed for lunch".into())
    );
    // Recipient-list policies surface as gather errors.
    let strict: RecipientList<Request<u8, u8>> = RecipientList::builder()
        .route(Route::to(["ghost"]))
        .unknown(UnknownRecipients::Error)
        .build();
    assert_eq!(
        ScatterGather::new(&strict)
            .scatter(1, Completion::within(LONG))
            .unwrap_err(),
        GatherError::UnknownRecipient("ghost".into())
    );
    let closed: Queue<Request<u8, u8>> = Queue::unbounded();
    closed.close();
    let stop: RecipientList<Request<u8, u8>> = RecipientList::builder()
        .on_failure(OnFailure::Stop)
        .recipient("closed", &closed)
        .build();
    let err = ScatterGather::new(&stop)
        .scatter(1, Completion::within(LONG))
        .unwrap_err();
    assert_eq!(err.to_string(), "recipient closed failed: closed");
}

/// A forwarded return address (a counted copy) stays counted through a copy on write of the
/// metadata it rides in: the back responder marks a clone of the forwarded message and lets the
/// original go, and the requester goes on waiting for the marked copy's reply. The other side
/// of keeping a request's own address uncounted on a copy on write.
#[test]
fn a_forwarded_address_stays_counted_through_a_copy_on_write() {
    let front: Queue<Request<u32, u32>> = Queue::unbounded();
    let back: Queue<u32> = Queue::unbounded();
    let requester = Requester::new(&front);
    thread::scope(|s| {
        let asking = spawn_named(s, "fwd-cow-req", || requester.request(5, LONG));
        let m = front.recv_timeout(LONG).unwrap();
        let forwarded = m.reply_to().cloned().unwrap();
        drop(m);
        back.send(Message::new(5).with_reply_to(forwarded)).unwrap();
        let m = back.recv_timeout(LONG).unwrap();
        let marked = m.clone().with_attr("seen", true); // the metadata is copied on write
        drop(m);
        wait_blocked("fwd-cow-req"); // still waiting: the marked copy may reply
        let to = marked.reply_to().unwrap().get::<ReplyTo<u32>>().unwrap();
        to.clone().send(marked.payload() + 1).unwrap();
        drop(marked);
        assert_eq!(asking.join().unwrap(), Ok(6));
    });
}

/// The Return Address pattern across two hops: a front responder forwards the request's return
/// address with a message of its own and drops the request; the back one replies. The requester
/// waits for that reply (the forwarded address counts as a copy that may reply), and each of many
/// requests gets its own reply although the requester reuses its reply metadata.
#[test]
fn a_forwarded_return_address_keeps_the_requester_waiting_for_its_reply() {
    let front: Queue<Request<u32, u32>> = Queue::unbounded();
    let back: Queue<u32> = Queue::unbounded();
    let requester = Requester::new(&front);
    let replies = thread::scope(|s| {
        s.spawn(|| {
            for m in &front {
                let forwarded = m.reply_to().cloned().unwrap();
                let body = *m.payload().body();
                drop(m);
                back.send(Message::new(body).with_reply_to(forwarded))
                    .unwrap();
            }
            back.close();
        });
        s.spawn(|| {
            for m in &back {
                let to = m.reply_to().unwrap().get::<ReplyTo<u32>>().unwrap().clone();
                to.send(m.into_payload() * 3).unwrap();
            }
        });
        let replies: Vec<_> = (0..200).map(|i| requester.request(i, LONG)).collect();
        front.close();
        replies
    });
    assert_eq!(replies, (0..200).map(|i| Ok(i * 3)).collect::<Vec<_>>());
    let stats = requester.stats();
    assert_eq!((stats.replies, stats.unanswered, stats.late), (200, 0, 0));
}

#[test]
fn request_carries_correlation_id_and_return_address() {
    let service: Queue<Request<u8, u8>> = Queue::unbounded();
    let requester = Requester::new(&service);
    let h = {
        let service = service.clone();
        thread::spawn(move || {
            let m = service.recv().unwrap();
            let to = m.reply_to().unwrap().get::<ReplyTo<u8>>().unwrap();
            assert_eq!(Some(to.correlation_id()), m.correlation_id());
            assert_eq!(m.payload().correlation_id(), to.correlation_id());
            assert!(m.payload().is_awaited());
            assert_eq!(m.attr("k").and_then(|v| v.as_str()), Some("v"));
            // The request kept the correlation id its message came with.
            assert_eq!(to.correlation_id(), CorrelationId::from_u64(77));
            m.into_payload().reply(9).unwrap();
        })
    };
    assert_eq!(
        requester.request(
            Message::new(1)
                .with_attr("k", "v")
                .with_correlation_id(CorrelationId::from_u64(77)),
            LONG
        ),
        Ok(9)
    );
    h.join().unwrap();
}

fn quotes(
    prices: &[(&str, Result<u32, &'static str>)],
) -> RecipientList<Request<u8, Result<u32, String>>> {
    let list = RecipientList::new(Route::all());
    for (name, price) in prices {
        let price = price.map_err(str::to_owned);
        list.add(*name, instant(move |_: &u8| price.clone()));
    }
    list
}

#[test]
fn completes_when_all_replied() {
    let list = quotes(&[("a", Ok(3)), ("b", Err("no stock")), ("c", Ok(2))]);
    let sg = ScatterGather::new(&list);
    let got = sg.scatter(0, Completion::within(LONG)).unwrap();
    assert_eq!(got.completed(), Completed::All);
    assert_eq!((got.expected(), got.replies().len()), (3, 3));
    assert!(got.is_complete() && got.missing().is_empty());
    assert_eq!(got.responders(), ["a", "b", "c"]);
    // An error value is a reply like any other.
    let errors: Vec<_> = got
        .replies()
        .iter()
        .filter_map(|r| {
            r.body()
                .as_ref()
                .err()
                .map(|e| (r.responder().unwrap(), e.as_str()))
        })
        .collect();
    assert_eq!(errors, [("b", "no stock")]);
    // The aggregator: the best quote.
    let best = got.fold(None, |best: Option<(&str, u32)>, r| {
        match (r.body(), best) {
            (Ok(p), Some((_, b))) if *p >= b => best,
            (Ok(p), _) => Some((r.responder().unwrap(), *p)),
            (Err(_), _) => best,
        }
    });
    assert_eq!(best, Some(("c", 2)));
}

/// A responder is a copy of the request: one that answers twice through clones of its
/// `reply_to` counts once, and the gather waits for the silent subscriber; one that clones the
/// request itself and answers through both counts as two, which completes the gather (as the
/// docs of `Completion` say; found by review, where the docs had claimed the first).
#[test]
fn a_request_cloned_by_its_responder_counts_as_another_responder() {
    let gather = |twice: Endpoint<Request<(), u8>>| {
        let topic: Topic<Request<(), u8>> = Topic::new();
        topic.subscribe_endpoint(twice);
        let _silent = topic.subscribe();
        let sg = ScatterGather::new(&topic);
        let got = sg
            .scatter((), Completion::within(Duration::from_millis(200)))
            .unwrap();
        (
            got.completed(),
            got.expected(),
            got.replies().len(),
            got.missing_count(),
        )
    };
    let by_reply_to = Endpoint::from_fn(|m: Message<Request<(), u8>>| {
        let req = m.into_payload();
        let again = req.reply_to();
        let _ = req.reply(1);
        let _ = again.send(2);
        Ok(())
    });
    assert_eq!(gather(by_reply_to), (Completed::Deadline, 2, 2, 1));
    let by_clone = Endpoint::from_fn(|m: Message<Request<(), u8>>| {
        let req = m.into_payload();
        let copy = req.clone();
        let _ = req.reply(1);
        let _ = copy.reply(2);
        Ok(())
    });
    assert_eq!(gather(by_clone), (Completed::All, 2, 2, 0));
}

#[test]
fn completes_after_first_n() {
    let list = quotes(&[("a", Ok(1)), ("b", Ok(2)), ("c", Ok(3)), ("d", Ok(4))]);
    let sg = ScatterGather::new(&list);
    let got = sg.scatter(0, Completion::within(LONG).first(2)).unwrap();
    assert_eq!(got.completed(), Completed::First(2));
    assert_eq!(got.responders(), ["a", "b"]);
    assert_eq!(got.missing(), ["c", "d"]);
    assert_eq!(got.missing_count(), 2);
    // The two replies that came but were not needed count as late.
    assert_eq!(sg.stats().late, 2);
    // first(0) completes before any reply.
    let got = sg.scatter(0, Completion::within(LONG).first(0)).unwrap();
    assert_eq!(
        (got.completed(), got.replies().len()),
        (Completed::First(0), 0)
    );
}

#[test]
fn completes_on_a_predicate() {
    let list = quotes(&[("a", Err("x")), ("b", Err("y")), ("c", Ok(7)), ("d", Ok(8))]);
    let sg = ScatterGather::new(&list);
    // First success.
    let got = sg
        .scatter(
            0,
            Completion::within(LONG)
                .when(|rs: &[Reply<Quote>]| rs.iter().any(|r| r.body().is_ok())),
        )
        .unwrap();
    assert_eq!(got.completed(), Completed::Predicate);
    assert_eq!(got.responders(), ["a", "b", "c"]);
    // Quorum: two replies of any kind.
    let got = sg
        .scatter(0, Completion::within(LONG).when(|rs| rs.len() >= 2))
        .unwrap();
    assert_eq!(
        (got.completed(), got.replies().len()),
        (Completed::Predicate, 2)
    );
    // When first(n) and the predicate hold together, first(n) is reported.
    let got = sg
        .scatter(
            0,
            Completion::within(LONG).first(1).when(|rs| !rs.is_empty()),
        )
        .unwrap();
    assert_eq!(got.completed(), Completed::First(1));
}

#[test]
fn completes_at_the_deadline() {
    let list = quotes(&[("fast", Ok(1))]);
    let slow: Queue<Request<u8, Result<u32, String>>> = Queue::unbounded(); // nobody reads it
    list.add("slow", &slow);
    let sg = ScatterGather::new(&list);
    let deadline = Instant::now() + Duration::from_millis(20);
    let got = sg.scatter(0, Completion::until(deadline)).unwrap();
    assert!(Instant::now() >= deadline);
    assert_eq!(got.completed(), Completed::Deadline);
    assert_eq!(got.responders(), ["fast"]);
    assert_eq!(got.missing(), ["slow"]);
    assert_eq!(sg.stats().timed_out, 1);
    // The slow reply, when it comes, is late.
    let req = slow.try_recv().unwrap().into_payload();
    assert_eq!(req.recipient(), Some("slow"));
    assert!(!req.is_awaited());
    assert!(req.reply(Ok(0)).unwrap_err().is_late());
    assert_eq!(sg.stats().late, 1);
}

#[test]
fn completes_when_no_more_replies_can_come() {
    let list = quotes(&[("a", Ok(1))]);
    list.add(
        "mute",
        Endpoint::from_fn(|_m: Message<Request<u8, Result<u32, String>>>| Ok(())),
    );
    let closed: Queue<Request<u8, Result<u32, String>>> = Queue::unbounded();
    closed.close();
    list.add("closed", &closed);
    let got = ScatterGather::new(&list)
        .scatter(0, Completion::within(LONG))
        .unwrap();
    assert_eq!(got.completed(), Completed::NoMoreReplies);
    assert_eq!(got.expected(), 2);
    assert_eq!(got.missing(), ["mute"]);
    assert_eq!(got.unreached(), ["closed"]);
    assert!(got.elapsed() < LONG);
}

#[test]
fn auction_through_a_topic() {
    let topic: Topic<Request<u32, u32>> = Topic::new();
    let handles: Vec<_> = (0..4u32)
        .map(|i| {
            let sub = topic.subscribe();
            thread::spawn(move || {
                for m in &sub {
                    let req = m.into_payload();
                    let bid = req.body() + i;
                    let _ = req.reply_as(format!("bidder-{i}"), bid);
                }
            })
        })
        .collect();
    let sg = ScatterGather::new(&topic);
    let got = sg.scatter(100, Completion::within(LONG)).unwrap();
    assert_eq!((got.completed(), got.expected()), (Completed::All, 4));
    let mut names = got.responders();
    names.sort_unstable();
    assert_eq!(names, ["bidder-0", "bidder-1", "bidder-2", "bidder-3"]);
    assert_eq!(got.fold(u32::MAX, |m, r| m.min(*r.body())), 100);
    topic.close();
    handles.into_iter().for_each(|h| h.join().unwrap());
}

#[test]
fn late_replies_never_leak_into_later_requests() {
    const N: u64 = 200;
    // Every fourth request is answered late for certain: the responder holds it until the
    // requester says it timed out, then replies (the requester has moved on to the next request
    // by then). The others are answered at once, well within their deadline.
    let is_late = |i: u64| i % 4 == 0;
    let service: Queue<Request<u64, u64>> = Queue::unbounded();
    let (gave_up_tx, gave_up) = mpsc::channel::<u64>();
    let responder = {
        let service = service.clone();
        thread::spawn(move || {
            let mut refused = 0u64;
            for m in &service {
                let req = m.into_payload();
                let i = *req.body();
                if is_late(i) {
                    let gone = gave_up
                        .recv_timeout(LONG)
                        .expect("the requester never gave up");
                    assert_eq!(gone, i);
                }
                match req.reply(i * 2 + 1) {
                    Ok(()) => assert!(!is_late(i), "a reply to {i} after it timed out"),
                    Err(e) => {
                        assert!(e.is_late() && is_late(i), "reply to {i} refused");
                        refused += 1;
                    }
                }
            }
            refused
        })
    };
    let requester = Requester::new(&service);
    let (mut ok, mut timed_out) = (0u64, 0u64);
    for i in 0..N {
        let timeout = if is_late(i) {
            Duration::from_millis(1)
        } else {
            LONG
        };
        match requester.request(i, timeout) {
            // Isolation: a reply is always the answer to this very request.
            Ok(answer) => {
                assert_eq!(answer, i * 2 + 1);
                ok += 1;
            }
            Err(RequestError::Timeout) => {
                assert!(is_late(i), "request {i} timed out");
                timed_out += 1;
                gave_up_tx.send(i).unwrap();
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    service.close();
    let refused = responder.join().unwrap();
    let s = requester.stats();
    assert!(
        ok > 0 && timed_out > 0,
        "{ok} answered, {timed_out} timed out"
    );
    assert_eq!((ok, timed_out), (N - N / 4, N / 4));
    assert_eq!((s.replies, s.timed_out), (ok, timed_out));
    // Every reply to a request that timed out was refused, counted late, and went nowhere else.
    assert_eq!(refused, timed_out);
    assert_eq!(s.late, timed_out);
}

#[test]
fn concurrent_gathers_from_four_threads() {
    let topic: Topic<Request<(usize, u64), (usize, u64)>> = Topic::new();
    let responders: Vec<_> = (0..3)
        .map(|i| {
            let sub = topic.subscribe();
            thread::spawn(move || {
                for m in &sub {
                    let req = m.into_payload();
                    let (t, x) = *req.body();
                    let _ = req.reply_as(format!("r{i}"), (t, x * 10));
                }
            })
        })
        .collect();
    let sg = ScatterGather::new(&topic);
    let gathers = AtomicUsize::new(0);
    thread::scope(|s| {
        for t in 0..4usize {
            let sg = sg.clone();
            let gathers = &gathers;
            s.spawn(move || {
                for x in 0..200u64 {
                    let got = sg.scatter((t, x), Completion::within(LONG)).unwrap();
                    assert_eq!(got.completed(), Completed::All);
                    assert_eq!(got.replies().len(), 3);
                    for r in got.replies() {
                        assert_eq!(*r.body(), (t, x * 10), "a reply to another gather");
                    }
                    gathers.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    assert_eq!(gathers.load(Ordering::Relaxed), 800);
    let s = sg.stats();
    assert_eq!((s.requests, s.replies, s.late), (800, 2400, 0));
    topic.close();
    responders.into_iter().for_each(|h| h.join().unwrap());
}

#[test]
fn drops() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    struct D;
    impl Drop for D {
        fn drop(&mut self) {
            DROPS.fetch_add(1, Ordering::Relaxed);
        }
    }
    // Replies: taken, late, unread at completion; each dropped exactly once.
    let list: RecipientList<Request<u8, Arc<D>>> = RecipientList::new(Route::all());
    let keep = Arc::new(D);
    for name in ["a", "b", "c"] {
        let k = Arc::clone(&keep);
        list.add(name, instant(move |_: &u8| Arc::clone(&k)));
    }
    let got = ScatterGather::new(&list)
        .scatter(0, Completion::within(LONG).first(1))
        .unwrap();
    // Ours, one per responder closure, and the one reply kept: the two unread ones are gone.
    assert_eq!(Arc::strong_count(&keep), 5);
    drop(got);
    assert_eq!(Arc::strong_count(&keep), 4);
    drop(list);
    assert_eq!(Arc::strong_count(&keep), 1);
    drop(keep);
    assert_eq!(DROPS.load(Ordering::Relaxed), 1);
}

#[test]
fn service_knows_its_responders() {
    let started = Instant::now();
    let service: Service<u32, u32> = Service::unbounded();
    let requester = service.requester();
    // Nobody registered: at once.
    assert_eq!(requester.request(1, LONG), Err(RequestError::NoResponder));
    assert_eq!(requester.stats().no_responder, 1);

    // The last responder leaves while a request waits: its requester learns at once.
    let responder = service.responder();
    let asking = {
        let requester = requester.clone();
        thread::spawn(move || requester.request(2, LONG))
    };
    let until = Instant::now() + LONG;
    while service.queue().is_empty() {
        assert!(Instant::now() < until, "the request never arrived");
        thread::yield_now();
    }
    drop(responder);
    assert_eq!(asking.join().unwrap(), Err(RequestError::NoResponder));
    assert!(service.queue().is_empty());

    // Three competing responders.
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let r = service.responder();
            thread::spawn(move || r.serve(|x| x * 2))
        })
        .collect();
    assert_eq!(service.responder_count(), 3);
    for i in 0..300 {
        assert_eq!(requester.request(i, LONG), Ok(i * 2));
    }
    service.close();
    let served: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(served, 300);
    assert_eq!(service.responder_count(), 0);
    assert!(started.elapsed() < LONG / 2);
}

/// A responder takes requests in batches: at most `max`, an empty batch when none came within
/// the wait, every request of a batch answerable, and `RecvError` once the service is closed and
/// drained (not before: what was queued at the close is still handed out).
#[test]
fn a_responder_answers_in_batches() {
    let service: Service<u32, u32> = Service::default();
    let responder = service.responder();
    let requester = service.requester();
    assert!(responder.recv_many(4, Duration::ZERO).unwrap().is_empty());
    thread::scope(|s| {
        let asking: Vec<_> = (0..6)
            .map(|x| {
                let requester = requester.clone();
                s.spawn(move || requester.request(x, LONG))
            })
            .collect();
        let until = Instant::now() + LONG;
        while responder.len() < 6 {
            assert!(Instant::now() < until, "the requests never arrived");
            thread::yield_now();
        }
        let first = responder.recv_many(4, LONG).unwrap();
        assert_eq!(first.len(), 4, "at most max");
        let second = responder.recv_many(4, LONG).unwrap();
        assert_eq!(second.len(), 2, "what was left, without waiting for more");
        let mut asked: Vec<u32> = first.iter().chain(&second).map(|r| *r.body()).collect();
        asked.sort_unstable();
        assert_eq!(asked, [0, 1, 2, 3, 4, 5]);
        for r in first.into_iter().chain(second) {
            let x = *r.body();
            r.reply(x + 100).unwrap();
        }
        let mut replies: Vec<u32> = asking
            .into_iter()
            .map(|a| a.join().unwrap().unwrap())
            .collect();
        replies.sort_unstable();
        assert_eq!(replies, [100, 101, 102, 103, 104, 105]);
    });
    // Queued before the close: still handed out; then the end.
    let late = thread::spawn({
        let requester = requester.clone();
        move || requester.request(7, LONG)
    });
    let until = Instant::now() + LONG;
    while responder.is_empty() {
        assert!(Instant::now() < until, "the request never arrived");
        thread::yield_now();
    }
    service.close();
    let batch = responder.recv_many(4, LONG).unwrap();
    assert_eq!(batch.iter().map(|r| *r.body()).collect::<Vec<_>>(), [7]);
    drop(batch);
    assert_eq!(late.join().unwrap(), Err(RequestError::Unanswered));
    assert_eq!(responder.recv_many(4, LONG).unwrap_err(), RecvError);
    assert_eq!(requester.stats().replies, 6);
}

/// A request that reached a responder, which dropped it unanswered after the service's last
/// responder had gone, is unanswered, not a request that reached nobody (found by review: the
/// requester asked whether a responder was registered now, not whether this request was dropped
/// for want of one).
#[test]
fn a_request_a_responder_took_and_dropped_is_unanswered_though_no_responder_is_left() {
    let service: Service<u32, u32> = Service::unbounded();
    let responder = service.responder();
    let requester = service.requester();
    thread::scope(|s| {
        let asking = s.spawn(|| requester.request(1, LONG));
        let req = responder.recv_timeout(LONG).unwrap();
        drop(responder);
        drop(req);
        assert_eq!(asking.join().unwrap(), Err(RequestError::Unanswered));
    });
    let stats = requester.stats();
    assert_eq!((stats.unanswered, stats.no_responder), (1, 0));
}

/// A responder that keeps a request's metadata (an audit log, say), changed or not, and drops
/// the request leaves it unanswered at once, whether the request message had metadata of its
/// own or not: the address copied into its own metadata, or into a copy on write, does not count
/// as a copy that may still reply (found by review: with an attribute, the requester waited out
/// its whole deadline).
#[test]
fn keeping_a_requests_metadata_does_not_keep_its_requester_waiting() {
    type R = Request<u32, u32>;
    let kept: Arc<std::sync::Mutex<Vec<Message<()>>>> = Arc::default();
    let audit = Arc::clone(&kept);
    let requester = Requester::new(Endpoint::from_fn(move |m: Message<R>| {
        // Odd requests are marked first: a copy on write of the metadata (found by review: the
        // copy counted the address, and the requester waited out its deadline).
        let m = if *m.payload().body() % 2 == 1 {
            m.with_attr("seen", true)
        } else {
            m
        };
        audit.lock().unwrap().push(m.map(|_| ()));
        Ok(())
    }));
    let got = [
        requester.request(0, LONG),
        requester.request(Message::new(2).with_attr("k", "v"), LONG),
        requester.request(1, LONG),
        requester.request(Message::new(3).with_attr("k", "v"), LONG),
    ];
    assert!(
        got.iter().all(|r| *r == Err(RequestError::Unanswered)),
        "{got:?}"
    );
    assert_eq!(kept.lock().unwrap().len(), 4);
    assert_eq!(requester.stats().timed_out, 0);
}

/// A redelivered request that its second consumer takes with `ack_into_message` (a clone, while
/// the first consumer still holds it) counts as a copy of its own; over a list, the recipients'
/// names keep the gather from completing as `All` while a recipient has not replied (found by
/// review: two replies from one queue's consumers completed it, with `missing` naming the
/// silent one).
#[test]
fn a_redelivered_request_taken_by_value_does_not_stand_in_for_a_silent_recipient() {
    use switchboard::ManualClock;
    type R = Request<u32, u32>;
    let clock = ManualClock::new();
    let q: Queue<R> = Queue::builder()
        .visibility_timeout(Duration::from_secs(30))
        .clock(clock.clone())
        .build();
    let silent: Queue<R> = Queue::unbounded();
    let list: RecipientList<R> = RecipientList::new(Route::all());
    list.add("q", &q);
    list.add("s", &silent);
    let sg = ScatterGather::new(&list);
    let got = thread::scope(|s| {
        s.spawn(|| {
            let first = q.receive_timeout(LONG).unwrap();
            clock.advance(Duration::from_secs(31));
            let second = q.receive_timeout(LONG).unwrap();
            assert_eq!(second.attempt(), 2);
            let taken = second.ack_into_message().unwrap(); // `first` still holds it: a clone
            first.payload().reply_to().send(1).unwrap();
            let _ = taken.into_payload().reply(2);
            drop(first);
        });
        sg.scatter(0, Completion::within(Duration::from_millis(300)))
            .unwrap()
    });
    assert_eq!(got.expected(), 2);
    assert_eq!(got.completed(), Completed::Deadline, "{got:?}");
    assert_eq!(got.missing(), ["s"]);
    assert_eq!(got.missing_count(), 1);
    assert_eq!(got.replies().len(), 2);
}

#[test]
fn errors_display_lowercase_and_debug_payload_free() {
    struct NoDebug;
    let msgs = [
        RequestError::NoResponder.to_string(),
        RequestError::Unanswered.to_string(),
        RequestError::Timeout.to_string(),
        RequestError::Full.to_string(),
        GatherError::NoResponder.to_string(),
        GatherError::UnknownRecipient("x".into()).to_string(),
        switchboard::ReplyError::Late(NoDebug).to_string(),
        switchboard::RecipientListError::UnknownRecipient {
            name: "x".into(),
            message: Message::new(NoDebug),
        }
        .to_string(),
    ];
    for m in msgs {
        assert!(
            m.chars().next().unwrap().is_lowercase() && !m.ends_with('.'),
            "{m}"
        );
    }
    assert_eq!(
        format!("{:?}", switchboard::ReplyError::Late(NoDebug)),
        "Late(..)"
    );
    // Like the other errors that hand a value back, it clones and compares when the value does.
    let late = switchboard::ReplyError::Late(7u8);
    assert_eq!(late.clone(), late);
    assert_ne!(late, switchboard::ReplyError::Late(8));
}

/// A responder reports what waits for it, as a queue does: a request nobody answered in time
/// stays queued and counts in `len`; closing the service shows on every handle.
#[test]
fn a_responder_sees_the_requests_waiting_and_the_close() {
    let service: Service<u32, u32> = Service::unbounded();
    let responder = service.responder();
    let requester = service.requester();
    assert_eq!((responder.len(), responder.is_empty()), (0, true));
    for n in 0..2 {
        assert_eq!(
            requester.request(n, Duration::from_millis(1)),
            Err(RequestError::Timeout)
        );
    }
    assert_eq!((responder.len(), responder.is_empty()), (2, false));
    assert!(!responder.is_closed() && !service.is_closed());
    assert!(service.close());
    assert!(responder.is_closed() && service.is_closed());
    assert_eq!(
        responder.try_iter().count(),
        2,
        "closing leaves the queued requests"
    );
    assert!(responder.is_empty());
}

/// A request body whose drop (the one a service's drain does) says so and waits for a go.
#[derive(Default)]
struct Held(Option<Hold>);

/// Where a [`Held`] body says it is being dropped, and where it waits for the go.
type Hold = (
    std::sync::Mutex<mpsc::Sender<()>>,
    std::sync::Mutex<mpsc::Receiver<()>>,
);

impl Clone for Held {
    /// A copy that does not wait.
    fn clone(&self) -> Self {
        Held(None)
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some((dropping, go)) = self.0.take() {
            dropping.lock().unwrap().send(()).unwrap();
            go.lock().unwrap().recv_timeout(LONG).unwrap();
        }
    }
}

/// The last responder leaves and drops the queued requests; a responder registers meanwhile,
/// and a request sent to it then is its own: the drain stops, it does not drop that one too.
#[test]
fn a_responder_registered_while_the_last_one_leaves_gets_the_later_requests() {
    let service: Service<Held, u32> = Service::unbounded();
    let requester = service.requester();
    let old = service.responder();
    let (dropping_tx, dropping) = mpsc::channel();
    let (go, go_rx) = mpsc::channel();
    let held = Held(Some((dropping_tx.into(), go_rx.into())));
    let wait_len = |n: usize| {
        let until = Instant::now() + LONG;
        while service.queue().len() != n {
            assert!(Instant::now() < until, "the queue never held {n}");
            thread::yield_now();
        }
    };
    thread::scope(|s| {
        let first = s.spawn(|| requester.request(held, LONG));
        wait_len(1);
        // The last responder leaves: its drain takes the first request and drops it (held).
        let leaving = s.spawn(move || drop(old));
        dropping.recv_timeout(LONG).unwrap();
        let new = service.responder();
        let second = s.spawn(|| requester.request(Held::default(), LONG));
        wait_len(1);
        go.send(()).unwrap();
        leaving.join().unwrap();
        let request = new
            .recv_timeout(LONG)
            .expect("the request sent to the registered responder was dropped");
        request.reply(7).unwrap();
        assert_eq!(second.join().unwrap(), Ok(7));
        assert!(first.join().unwrap().is_err());
    });
}

#[test]
fn a_parked_requester_wakes_for_a_reply_and_for_the_last_drop() {
    // The test answers each request only once the requester thread is parked (blocked in the
    // kernel), so the wake-up of a parked waiter is what is tested, every run.
    let service: Queue<Request<u8, u8>> = Queue::unbounded();
    let requester = Requester::new(&service);
    thread::scope(|s| {
        let h = spawn_named(s, "requester", || {
            let request = || {
                let started = Instant::now();
                let r = requester.request(0, LONG);
                // Woken by the reply (or the drop), not by the deadline.
                assert!(
                    started.elapsed() < LONG / 2,
                    "{r:?} after {:?}",
                    started.elapsed()
                );
                r
            };
            (request(), request())
        });
        let first = service.recv_timeout(LONG).unwrap().into_payload();
        wait_blocked("requester");
        first.reply(1).unwrap();
        let second = service.recv_timeout(LONG).unwrap().into_payload();
        wait_blocked("requester");
        drop(second);
        assert_eq!(h.join().unwrap(), (Ok(1), Err(RequestError::Unanswered)));
    });
}

/// A list recipient that fans out (a topic) counts each responder it reached; one that
/// reached nobody (a topic without subscribers) counts none.
#[test]
fn a_list_gathers_every_responder_a_topic_recipient_reached() {
    let topic: Topic<Request<u32, u32>> = Topic::new();
    let subs: Vec<_> = (0..3).map(|_| topic.subscribe()).collect();
    let empty: Topic<Request<u32, u32>> = Topic::new();
    let list: RecipientList<Request<u32, u32>> = RecipientList::new(Route::all());
    list.add("desk", instant(|x: &u32| x + 1));
    list.add("floor", &topic);
    list.add("nobody", &empty);
    let sg = ScatterGather::new(&list);
    let gather = thread::spawn(move || sg.scatter(10, Completion::within(LONG)).unwrap());
    // Each of the topic's subscribers answers its copy.
    for (k, s) in subs.iter().enumerate() {
        let req = s.recv_timeout(LONG).unwrap().into_payload();
        assert_eq!(req.recipient(), Some("floor"));
        let body = *req.body();
        req.reply(body + 100 + k as u32).unwrap();
    }
    let got = gather.join().unwrap();
    assert_eq!(got.completed(), Completed::All);
    assert_eq!((got.expected(), got.replies().len()), (4, 4));
    let mut bodies: Vec<u32> = got.replies().iter().map(|r| *r.body()).collect();
    bodies.sort_unstable();
    assert_eq!(bodies, [11, 110, 111, 112]);
    // "nobody" was delivered to but reached no responder: it is not awaited, so the gather is
    // complete with nothing missing, and "nobody" is reported as unreached.
    assert!(got.is_complete());
    assert!(got.missing().is_empty(), "missing: {:?}", got.missing());
    assert_eq!(got.unreached(), ["nobody"]);

    // A list whose only recipient reaches nobody: no responder, at once.
    let lonely: RecipientList<Request<u32, u32>> = RecipientList::new(Route::all());
    lonely.add("nobody", &empty);
    let start = Instant::now();
    let err = ScatterGather::new(&lonely)
        .scatter(1, Completion::within(LONG))
        .unwrap_err();
    assert_eq!(err, GatherError::NoResponder);
    assert!(
        start.elapsed() < LONG / 2,
        "reported at once, not at the deadline"
    );
}

/// A topic whose subscriptions are partly full: the request goes to those with room, and the
/// gather (or request) waits for their replies instead of failing with `Full`.
#[test]
fn a_topic_with_a_full_subscription_still_reaches_the_others() {
    use switchboard::{Overflow, SubscribeOptions};

    let topic: Topic<Request<u32, u32>> = Topic::new();
    let full = topic.subscribe_with(
        SubscribeOptions::new()
            .capacity(1)
            .overflow(Overflow::Error),
    );
    let sg = ScatterGather::new(&topic);
    // Fill the first subscription with a request nobody answers; its copy of every later
    // request is refused.
    let unanswered = sg.scatter(0, Completion::within(Duration::from_millis(1)));
    assert_eq!(unanswered.unwrap().completed(), Completed::Deadline);
    assert_eq!(full.len(), 1);
    let open = topic.subscribe();

    let answer = |sub: &switchboard::Subscription<Request<u32, u32>>| {
        let req = sub.recv_timeout(LONG).unwrap().into_payload();
        let body = *req.body();
        req.reply_as("open", body * 2).unwrap();
    };

    let got = thread::scope(|s| {
        s.spawn(|| answer(&open));
        sg.scatter(21, Completion::within(LONG)).unwrap()
    });
    assert_eq!((got.completed(), got.expected()), (Completed::All, 1));
    assert_eq!(*got.replies()[0].body(), 42);

    let requester = Requester::new(&topic);
    let reply = thread::scope(|s| {
        s.spawn(|| answer(&open));
        requester.request(5, LONG).unwrap()
    });
    assert_eq!(reply, 10);
    assert_eq!(full.len(), 1, "the full subscription got neither request");

    // With every subscription full, nobody is reached: `Full` at once.
    drop(open);
    let start = Instant::now();
    assert_eq!(
        sg.scatter(1, Completion::within(LONG)).unwrap_err(),
        GatherError::Full
    );
    assert_eq!(requester.request(1, LONG).unwrap_err(), RequestError::Full);
    assert!(start.elapsed() < LONG / 2, "reported at once");
}

/// A topic recipient with one subscription full reached the others: it is among the recipients
/// whose replies are awaited (`missing` names it while none came), not among the unreached.
#[test]
fn a_partly_full_topic_recipient_counts_as_reached() {
    use switchboard::{Overflow, SubscribeOptions};

    type Req = Request<u8, Result<u32, String>>;
    let topic: Topic<Req> = Topic::new();
    let full = topic.subscribe_with(
        SubscribeOptions::new()
            .capacity(1)
            .overflow(Overflow::Error),
    );
    let open = topic.subscribe();
    let list = quotes(&[("a", Ok(1))]);
    list.add("desk", &topic);
    let sg = ScatterGather::new(&list);
    // The first scatter fills `full`; nobody on the topic answers it.
    let first = sg
        .scatter(0, Completion::within(Duration::from_millis(1)))
        .unwrap();
    assert_eq!(
        (first.expected(), first.missing()),
        (3, &["desk".to_owned()][..])
    );
    assert!(first.unreached().is_empty());
    open.try_recv().unwrap();

    let got = sg
        .scatter(1, Completion::within(Duration::from_millis(20)))
        .unwrap();
    assert_eq!(got.completed(), Completed::Deadline);
    assert_eq!(got.expected(), 2, "`a` and the open subscription");
    assert_eq!(got.missing(), ["desk"]);
    assert!(got.unreached().is_empty(), "{:?}", got.unreached());
    assert_eq!(full.len(), 1);
    assert_eq!(open.len(), 1);
}

/// Debug output names the responders and never prints a reply's body.
#[test]
fn debug_of_replies_and_gathers_leaves_the_bodies_out() {
    const SECRET: &str = "SECRET-REPLY-BODY";
    let responder = Endpoint::from_fn(|m: Message<Request<u32, String>>| {
        let _ = m.into_payload().reply_as("desk", SECRET.to_owned());
        Ok(())
    });
    let got = ScatterGather::new(responder)
        .scatter(1u32, Completion::within(LONG).first(1))
        .unwrap();
    let reply = format!("{:?}", got.replies()[0]);
    let gathered = format!("{got:?}");
    for s in [&reply, &gathered] {
        assert!(!s.contains(SECRET) && s.contains("desk"), "{s}");
    }
}

/// A request or scatter that user code unwinds (a completion predicate, an endpoint that
/// panics after the request reached a responder) stops waiting as any that ends does: the
/// responders are told nobody waits, their replies come back to them and count as late (found
/// by review: the reply channel stayed open, so replies went in, were never read, and were
/// counted nowhere).
#[test]
fn a_conversation_that_unwinds_counts_later_replies_as_late() {
    use std::panic::{catch_unwind, AssertUnwindSafe};

    let topic: Topic<Request<u32, u32>> = Topic::new();
    let q = Queue::unbounded();
    topic.subscribe_queue(&q);
    let sg = ScatterGather::new(&topic);
    let r = catch_unwind(AssertUnwindSafe(|| {
        sg.scatter(
            1,
            Completion::within(LONG).when(|_| panic!("deliberate panic in a completion predicate")),
        )
    }));
    assert!(r.is_err(), "the predicate panicked");
    let req = q.try_recv().unwrap().into_payload();
    assert!(!req.is_awaited());
    assert!(req.reply(2).is_err(), "nobody waits for this reply");
    assert_eq!(sg.stats().late, 1);

    // The request reaches a responder's queue, then a chained closure panics.
    topic.subscribe_endpoint(Endpoint::from_fn(|_: Message<Request<u32, u32>>| {
        panic!("deliberate panic in an endpoint")
    }));
    let requester = Requester::new(&topic);
    let r = catch_unwind(AssertUnwindSafe(|| requester.request(3, LONG)));
    assert!(r.is_err(), "the endpoint panicked");
    let req = q.try_recv().unwrap().into_payload();
    assert!(!req.is_awaited());
    assert!(req.reply(4).is_err(), "nobody waits for this reply");
    assert_eq!(requester.stats().late, 1);
    // Both go on: this thread's next conversation is a clean one.
    let echo = Requester::new(Endpoint::from_fn(|m: Message<Request<u32, u32>>| {
        let r = m.into_payload();
        let x = *r.body();
        r.reply(x + 1).map_err(|_| unreachable!())
    }));
    assert_eq!(echo.request(5, LONG).unwrap(), 6);
}

/// A request that waited for room until its deadline and never went in ended at its deadline:
/// counted in `timed_out`, as one that waited for replies is (found by review: it was counted
/// nowhere but `requests`).
#[test]
fn a_request_that_found_no_room_before_its_deadline_counts_as_timed_out() {
    let full: Queue<Request<u32, u32>> = Queue::bounded(1);
    let blocker = Requester::new(&full);
    // Fills the queue: nobody serves it, so the request stays and times out.
    assert_eq!(
        blocker.request(0, Duration::from_millis(1)),
        Err(RequestError::Timeout)
    );
    let requester = Requester::new(&full);
    assert_eq!(
        requester.request(1, Duration::from_millis(20)),
        Err(RequestError::Full)
    );
    let s = requester.stats();
    assert_eq!((s.requests, s.timed_out), (1, 1));

    let sg: ScatterGather<u32, u32> = ScatterGather::new(&full);
    let err = sg
        .scatter(2, Completion::within(Duration::from_millis(20)))
        .unwrap_err();
    assert_eq!(err, GatherError::Full);
    let s = sg.stats();
    assert_eq!((s.requests, s.timed_out), (1, 1));
}

/// A responder drains what waits without blocking, as a queue's `try_iter` does (found by
/// review: `Responder` had `iter` but no `try_iter`, so a poller had to loop on `try_recv`).
#[test]
fn responder_try_iter_takes_what_waits_and_never_blocks() {
    let service: switchboard::Service<u32, u32> = switchboard::Service::unbounded();
    let responder = service.responder();
    assert_eq!(responder.try_iter().count(), 0); // open and empty: returns at once
    let requester = service.requester();
    let asking = thread::spawn(move || requester.request(20, Duration::from_secs(10)));
    let t0 = Instant::now();
    let request = loop {
        if let Some(r) = responder.try_iter().next() {
            break r;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the request never came"
        );
        thread::yield_now();
    };
    let n = *request.body();
    request.reply(n + 1).unwrap();
    assert_eq!(asking.join().unwrap(), Ok(21));
}

/// A gather that ends with a reply unread, whose drop panics as the reply channel closes: the
/// reply is counted late first, the channel is closed (a later reply goes back to its
/// responder), and the replies gathered go with the unwind, as the docs say (an audit of
/// payload drops: acceptable, now documented on `scatter`).
#[test]
fn a_panicking_drop_of_an_unread_reply_counts_it_late() {
    let bombs = Arc::new(Bombs::new(2, 1));
    let topic: Topic<Request<u32, Bomb>> = Topic::new();
    for id in 0..2 {
        let bombs = Arc::clone(&bombs);
        topic.subscribe_endpoint(instant(move |_: &u32| bombs.make(id)));
    }
    let late = Queue::unbounded();
    topic.subscribe_queue(&late);
    let sg = ScatterGather::new(&topic);
    assert!(panics(|| sg.scatter(1, Completion::within(LONG).first(1))));
    let s = sg.stats();
    assert_eq!((s.requests, s.replies, s.late), (1, 1, 1), "{s:?}");
    assert_eq!((bombs.dropped(0), bombs.dropped(1)), (1, 1));
    // The third responder answers after the gather: its reply comes back to it, counted late.
    let req = late.try_recv().unwrap().into_payload();
    assert!(!req.is_awaited());
    let back = req.reply(bombs.make(0));
    assert!(back.is_err());
    drop(back);
    assert_eq!(sg.stats().late, 2);
}

/// A responder that answers twice counts once: `All` waits for every responder reached, and
/// `missing` and `is_complete` agree (found by review: two replies from one recipient completed
/// a gather of two while the other was silent). The silent one keeps its request, so the gather
/// can only end at its deadline.
#[test]
fn a_responder_that_replies_twice_counts_once() {
    type R = Request<u32, u32>;
    let held: Arc<std::sync::Mutex<Vec<R>>> = Arc::default();
    let twice = Endpoint::from_fn(|m: Message<R>| {
        let r = m.into_payload();
        r.reply_to().send(1).unwrap();
        r.reply(2).unwrap();
        Ok(())
    });
    let silent = {
        let held = Arc::clone(&held);
        Endpoint::from_fn(move |m: Message<R>| {
            held.lock().unwrap().push(m.into_payload());
            Ok(())
        })
    };
    let list = RecipientList::new(Route::all());
    list.add("twice", twice.clone());
    list.add("silent", silent.clone());
    let g = ScatterGather::new(&list)
        .scatter(1, Completion::within(Duration::from_millis(50)))
        .unwrap();
    assert_eq!(g.completed(), Completed::Deadline);
    assert_eq!((g.expected(), g.replies().len()), (2, 2));
    assert_eq!(
        (g.missing(), g.missing_count()),
        (&["silent".to_owned()][..], 1)
    );
    assert!(!g.is_complete());
    held.lock().unwrap().clear();

    // The same through a topic, whose subscribers have no names.
    let topic: Topic<R> = Topic::new();
    topic.subscribe_endpoint(twice);
    topic.subscribe_endpoint(silent);
    let g = ScatterGather::new(&topic)
        .scatter(1, Completion::within(Duration::from_millis(50)))
        .unwrap();
    assert_eq!(g.completed(), Completed::Deadline);
    assert_eq!(
        (g.expected(), g.replies().len(), g.missing_count()),
        (2, 2, 1)
    );
    held.lock().unwrap().clear();

    // Both answering (one of them twice) complete it at once.
    let list = RecipientList::new(Route::all());
    list.add("a", instant(|x: &u32| x + 1));
    list.add(
        "b",
        Endpoint::from_fn(|m: Message<R>| {
            let r = m.into_payload();
            r.reply_to().send(0).unwrap();
            r.reply(0).unwrap();
            Ok(())
        }),
    );
    let g = ScatterGather::new(&list)
        .scatter(1, Completion::within(LONG))
        .unwrap();
    assert_eq!(g.completed(), Completed::All);
    assert!(g.is_complete());
    assert!(g.elapsed() < LONG / 2);
}

/// Found by mutation testing (leaving the first queued reply out of the late count passed every
/// test): replies queued and never read when a gather completes count as late, the first one
/// queued included.
#[test]
fn every_reply_unread_at_completion_counts_late() {
    let list = quotes(&[("a", Ok(1)), ("b", Ok(2))]);
    let sg = ScatterGather::new(&list);
    let got = sg.scatter(0, Completion::within(LONG).first(0)).unwrap();
    assert_eq!(
        (got.completed(), got.replies().len()),
        (Completed::First(0), 0)
    );
    assert_eq!(sg.stats().late, 2, "both replies came and went unread");
}

/// Bounds this binary in time: a hanging test fails the run (see `common::start_watchdog`).
#[test]
fn _watchdog() {
    common::start_watchdog();
}

/// Past the sizes where the gather's bookkeeping moves from scans to hash sets: 100
/// responders, every 7th silent (it drops the request), and a topic with no subscribers that
/// reaches nobody. The gather names exactly the silent ones as missing, the topic as
/// unreached, and counts each responder once.
#[test]
fn a_wide_gather_names_exactly_the_silent_and_unreached_responders() {
    let list: RecipientList<Request<u8, u32>> = RecipientList::new(Route::all());
    for k in 0..100u32 {
        list.add(
            format!("r{k:03}"),
            Endpoint::from_fn(move |m: Message<Request<u8, u32>>| {
                let req = m.into_payload();
                if k % 7 != 0 {
                    let _ = req.reply(k);
                }
                Ok(())
            }),
        );
    }
    let nobody: Topic<Request<u8, u32>> = Topic::new();
    list.add("zz-empty-topic", &nobody);
    let got = ScatterGather::new(&list)
        .scatter(0, Completion::within(LONG))
        .unwrap();
    let silent: Vec<String> = (0..100)
        .filter(|k| k % 7 == 0)
        .map(|k| format!("r{k:03}"))
        .collect();
    assert_eq!(got.completed(), Completed::NoMoreReplies);
    assert_eq!(got.expected(), 100);
    assert_eq!(got.missing(), silent);
    assert_eq!(got.unreached(), ["zz-empty-topic"]);
    assert_eq!(got.replies().len(), 100 - silent.len());
}

/// A responder's requests iterate through named types: `for request in &responder` works, and
/// the iterator stays ended once the service is closed and drained.
#[test]
fn a_responder_iterates_by_reference_and_stays_ended() {
    let service: switchboard::Service<u32, u32> = switchboard::Service::unbounded();
    let responder = service.responder();
    let requester = service.requester();
    let worker = std::thread::spawn(move || {
        let mut served = 0;
        for request in &responder {
            let x = *request.body();
            request.reply(x + 1).unwrap();
            served += 1;
        }
        let mut it = responder.iter();
        (served, it.next().is_none() && it.next().is_none())
    });
    for i in 0..3 {
        assert_eq!(requester.request(i, Duration::from_secs(10)), Ok(i + 1));
    }
    service.close();
    assert_eq!(worker.join().unwrap(), (3, true));
}

type Small = Request<u32, u32>;

/// A reply through the message's shared metadata address names no copy: the gather keeps it
/// but credits no responder, so the recipient stays missing and the gather is not `All`
/// (found by review: it was `All`, complete, and listed the recipient as missing all at once).
#[test]
fn a_reply_through_the_metadata_address_is_kept_but_credits_no_responder() {
    let list: RecipientList<Small> = RecipientList::new(Route::all());
    list.add(
        "acme",
        Endpoint::from_fn(|m: Message<Small>| {
            let to = m.reply_to().unwrap().get::<ReplyTo<u32>>().unwrap().clone();
            to.send(m.into_payload().body() + 1).unwrap();
            Ok(())
        }),
    );
    list.add(
        "typed",
        Endpoint::from_fn(|m: Message<Small>| {
            let _ = m.into_payload().reply(7);
            Ok(())
        }),
    );
    let got = ScatterGather::new(&list)
        .scatter(1, Completion::within(LONG))
        .unwrap();
    // Both dropped their copies: nothing more can come.
    assert_eq!(got.completed(), Completed::NoMoreReplies);
    assert_eq!(got.replies().len(), 2);
    assert_eq!(got.expected(), 2);
    assert_eq!(got.missing(), ["acme"]);
    assert_eq!(got.missing_count(), 1);
    assert!(!got.is_complete());
    let untold = got.replies().iter().find(|r| *r.body() == 2).unwrap();
    assert_eq!((untold.responder(), untold.recipient()), (None, None));
    assert_eq!(got.responders(), ["typed"]);
}

/// One responder answering twice through a forwarded metadata address does not complete a
/// gather as `All` while another responder still holds its request.
#[test]
fn two_metadata_replies_from_one_responder_do_not_complete_all() {
    let held: Arc<std::sync::Mutex<Vec<Small>>> = Arc::default();
    let list: RecipientList<Small> = RecipientList::new(Route::all());
    list.add(
        "a",
        Endpoint::from_fn(|m: Message<Small>| {
            let addr = m.reply_to().unwrap().clone();
            let to = addr.get::<ReplyTo<u32>>().unwrap();
            to.clone().send(1).unwrap();
            to.clone().send(2).unwrap();
            Ok(())
        }),
    );
    let h = Arc::clone(&held);
    list.add(
        "b",
        Endpoint::from_fn(move |m: Message<Small>| {
            h.lock().unwrap().push(m.into_payload());
            Ok(())
        }),
    );
    let got = ScatterGather::new(&list)
        .scatter(1, Completion::within(Duration::from_millis(100)))
        .unwrap();
    assert_eq!(got.completed(), Completed::Deadline);
    assert_eq!(got.replies().len(), 2);
    assert_eq!(got.missing(), ["a", "b"]);
    assert_eq!(got.missing_count(), 2);
    // Replies through the metadata address still count as replies.
    let first = ScatterGather::new(&list)
        .scatter(1, Completion::within(LONG).first(2))
        .unwrap();
    assert_eq!(first.completed(), Completed::First(2));
}

/// A scatter the list refuses as a delivery loop says so, as a request-reply does, instead of
/// naming an empty recipient with an empty outcome.
#[test]
fn a_scatter_refused_as_a_loop_is_rejected() {
    let list: RecipientList<Small> = RecipientList::new(Route::all());
    let seen: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let sg = ScatterGather::new(&list);
    let (inner, s) = (sg.clone(), Arc::clone(&seen));
    list.add(
        "forward",
        Endpoint::from_fn(move |m: Message<Small>| {
            let again = m.map(|r| *r.body());
            let e = inner
                .scatter(again, Completion::within(Duration::from_millis(50)))
                .unwrap_err();
            s.lock().unwrap().push(format!("{e:?}"));
            Ok(())
        }),
    );
    let _ = sg.scatter(1, Completion::within(Duration::from_millis(100)));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert!(
        seen[0].starts_with("Rejected(\"delivery loop"),
        "{}",
        seen[0]
    );
}

/// A request an `Overflow::Error` subscription refuses at once is `Full` but not a time-out.
#[test]
fn a_request_refused_full_at_once_is_not_counted_as_timed_out() {
    use switchboard::{Overflow, SubscribeOptions};
    let topic: Topic<Small> = Topic::new();
    let _sub = topic.subscribe_with(
        SubscribeOptions::default()
            .capacity(1)
            .overflow(Overflow::Error),
    );
    let requester = Requester::new(&topic);
    // The first fills the subscription and times out waiting for a reply.
    assert_eq!(
        requester.request(1, Duration::from_millis(1)),
        Err(RequestError::Timeout)
    );
    assert_eq!(requester.request(2, LONG), Err(RequestError::Full));
    assert_eq!(requester.stats().timed_out, 1);
    let sg = ScatterGather::new(&topic);
    assert_eq!(
        sg.scatter(3, Completion::within(LONG)).unwrap_err(),
        GatherError::Full
    );
    assert_eq!(sg.stats().timed_out, 0);
}

/// When every responder replied and the first `n` replies came with the same reply, the gather
/// says `All`, the first in the documented order (`All`, `First`, `Predicate`); a mutation that
/// checked `First` first passed every other test (found by a test audit).
#[test]
fn all_is_reported_before_first_when_both_hold() {
    let topic: Topic<Small> = Topic::new();
    for k in 0..2u32 {
        topic.subscribe_endpoint(Endpoint::from_fn(move |m: Message<Small>| {
            let _ = m.into_payload().reply(k);
            Ok(())
        }));
    }
    let sg = ScatterGather::new(&topic);
    let got = sg
        .scatter(1, Completion::within(LONG).first(2).when(|r| r.len() == 2))
        .unwrap();
    assert_eq!(got.completed(), Completed::All);
    assert_eq!(got.replies().len(), 2);
    // With one reply short of everyone, `First` comes before `Predicate`.
    let got = sg
        .scatter(1, Completion::within(LONG).first(1).when(|r| !r.is_empty()))
        .unwrap();
    assert_eq!(got.completed(), Completed::First(1));
}

/// A responder subscription dropped while the scatter waited for room in it is no responder
/// the gather waits for: the others' replies complete it as `All` (found by review: the copy
/// that went with the dropped buffer counted as reached, and the gather ended short of `All`).
#[test]
fn a_gather_does_not_count_a_subscription_dropped_while_the_scatter_waited_for_it() {
    use switchboard::{Overflow, SubscribeOptions};
    let topic: Topic<Request<u32, u32>> = Topic::new();
    let live = topic.subscribe();
    // A counted buffer (above a channel's largest): its publisher looks for room every
    // millisecond, and the drop's emptying of this many copies takes longer than that, so the
    // copy goes into the buffer being emptied rather than finding it disconnected.
    const CAP: usize = 70_000;
    let stalled = topic.subscribe_with(
        SubscribeOptions::new()
            .capacity(CAP)
            .overflow(Overflow::Block),
    );
    let sg = ScatterGather::new(&topic);
    for _ in 0..CAP {
        // Fills `stalled`, one copy at a time; `live` reads its copies.
        sg.scatter(0, Completion::within(Duration::ZERO)).unwrap();
        while live.try_recv().is_ok() {}
    }
    thread::scope(|s| {
        let gather = spawn_named(s, "sg-stalled", || sg.scatter(1, Completion::within(LONG)));
        wait_blocked("sg-stalled");
        drop(stalled);
        let req = live.recv_timeout(LONG).unwrap().into_payload();
        assert_eq!(*req.body(), 1);
        req.reply(7).unwrap();
        let got = gather.join().unwrap().unwrap();
        assert_eq!(
            (got.expected(), got.completed()),
            (1, Completed::All),
            "{got:?}"
        );
    });
}

/// When the last responder goes, every queued request is dropped and its requester told at
/// once, even past a request whose drop panics (found by review: the drain stopped there, and
/// the requesters behind it waited out their deadlines).
#[test]
fn the_last_responder_going_drains_past_a_request_whose_drop_panics() {
    let bombs = Bombs::new(3, 0);
    let service: Service<Bomb, u32> = Service::unbounded();
    let responder = service.responder();
    let askers: Vec<_> = (0..3)
        .map(|id| {
            let (requester, body) = (service.requester(), bombs.make(id));
            let asker = thread::Builder::new()
                .name(format!("asker{id}"))
                .spawn(move || {
                    let start = Instant::now();
                    (requester.request(body, LONG), start.elapsed())
                })
                .unwrap();
            // In order: the armed request first.
            let deadline = Instant::now() + LONG;
            while service.queue().len() < id + 1 {
                assert!(Instant::now() < deadline, "request {id} never queued");
                thread::yield_now();
            }
            asker
        })
        .collect();
    // Every asker waits for its reply before the responder goes: an asker still between its
    // delivery and its wait sees the responder gone and drains the queue itself, so the first
    // request's drop panicked on that asker's thread instead (a race in this test, found by
    // review: it failed about one run in thirteen under load).
    for id in 0..3 {
        wait_blocked(&format!("asker{id}"));
    }
    assert!(
        panics(|| drop(responder)),
        "the first request's drop panicked"
    );
    for (id, asker) in askers.into_iter().enumerate() {
        let (got, took) = asker.join().unwrap();
        assert_eq!(got, Err(RequestError::NoResponder), "request {id}");
        assert!(took < LONG, "request {id} waited out its deadline");
    }
    assert!(service.queue().is_empty());
    assert!((0..3).all(|id| bombs.dropped(id) == 1));
}

/// A gather ends at its deadline even while replies keep coming (found by review: a reply
/// already there was taken without a look at the clock, so a responder streaming replies held
/// a 100 ms gather for seconds).
#[test]
fn replies_that_keep_coming_do_not_hold_a_gather_past_its_deadline() {
    let topic: Topic<Request<(), u32>> = Topic::new();
    let sub = topic.subscribe();
    let _silent = topic.subscribe(); // never replies: `All` cannot end the gather
    let streamer = thread::spawn(move || {
        let req = sub.recv().unwrap().into_payload();
        // Replies until they are late; 10,000 at most.
        (0..10_000u32)
            .take_while(|&i| {
                thread::sleep(Duration::from_micros(50));
                req.reply_to().send(i).is_ok()
            })
            .count()
    });
    let sg = ScatterGather::new(&topic);
    let start = Instant::now();
    let got = sg
        .scatter(
            (),
            Completion::within(Duration::from_millis(100)).when(|_| {
                thread::sleep(Duration::from_micros(500)); // a check that takes a while
                false
            }),
        )
        .unwrap();
    let took = start.elapsed();
    let sent = streamer.join().unwrap();
    assert_eq!(got.completed(), Completed::Deadline);
    // Unbounded, it took the 10,000 replies half a millisecond apart: five seconds at least.
    assert!(
        took < Duration::from_secs(2),
        "a 100 ms gather took {took:?}"
    );
    assert!(
        sent < 10_000,
        "the replies after the deadline were refused as late"
    );
    assert_eq!(sg.stats().replies + sg.stats().late, sent as u64 + 1);
}

/// A list scatter that found one recipient full (waiting out the deadline for room) and one
/// closed failed for want of room, whatever order the route named them in, and is counted as
/// timed out (found by review: the error and the counts followed the route's order, and a
/// stopping list's full recipient was not counted).
#[test]
fn a_list_scatter_that_found_no_room_is_full_whatever_the_order() {
    type R = Request<u32, u32>;
    let patience = Duration::from_millis(50);
    for (order, policy) in [
        (["full", "closed"], OnFailure::Continue),
        (["closed", "full"], OnFailure::Continue),
        (["full", "closed"], OnFailure::Stop),
    ] {
        let full: Queue<R> = Queue::bounded(1);
        let closed: Queue<R> = Queue::unbounded();
        closed.close();
        let list = RecipientList::builder()
            .route(Route::to(order))
            .on_failure(policy)
            .recipient("full", &full)
            .recipient("closed", &closed)
            .build();
        // Another conversation's request fills it.
        let filler = Requester::new(&full);
        assert_eq!(
            filler.request(0, Duration::ZERO),
            Err(RequestError::Timeout)
        );
        assert_eq!(full.len(), 1);

        let sg = ScatterGather::new(&list);
        let err = sg.scatter(1, Completion::within(patience)).unwrap_err();
        let why = format!("{order:?} {policy:?}: {err:?}");
        match policy {
            OnFailure::Continue => assert_eq!(err, GatherError::Full, "{why}"),
            _ => assert_eq!(
                err,
                GatherError::RecipientFailed {
                    name: "full".into(),
                    outcome: "full".into()
                }
            ),
        }
        let s = sg.stats();
        assert_eq!((s.timed_out, s.no_responder), (1, 0), "{why}");

        if policy == OnFailure::Continue {
            let requester = Requester::new(&list);
            assert_eq!(
                requester.request(2, patience),
                Err(RequestError::Full),
                "{why}"
            );
            assert_eq!(requester.stats().no_responder, 0);
        }
    }
}

/// A topic whose only subscription is full under `DropNewest` took nothing: the request reached
/// nobody (as the docs of `NoResponder` say), and no time-out is counted.
#[test]
fn a_request_every_subscription_dropped_reached_nobody() {
    let topic: Topic<Request<u32, u32>> = Topic::new();
    let sub = topic.subscribe_with(
        SubscribeOptions::new()
            .capacity(1)
            .overflow(Overflow::DropNewest),
    );
    let sg = ScatterGather::new(&topic);
    let first = sg.scatter(1, Completion::within(Duration::from_millis(1)));
    assert_eq!(first.map(|g| g.expected()), Ok(1), "the first fills it");
    let err = sg.scatter(2, Completion::within(LONG)).unwrap_err();
    assert_eq!(err, GatherError::NoResponder, "at once");
    let requester = Requester::new(&topic);
    assert_eq!(requester.request(3, LONG), Err(RequestError::NoResponder));
    let (s, r) = (sg.stats(), requester.stats());
    assert_eq!((s.no_responder, s.timed_out), (1, 1), "the first timed out");
    assert_eq!((r.no_responder, r.timed_out), (1, 0));
    assert_eq!(sub.dropped(), 2);
    assert_eq!(sub.try_recv().map(|m| *m.payload().body()), Ok(1));
}

/// Replies that came while the scatter waited (until its deadline) for room in a full `Block`
/// subscription came in time: they are gathered, not refused as late by the deadline that the
/// wait spent (found by review of the deadline check before each wait).
#[test]
fn replies_that_came_while_the_scatter_waited_for_room_are_gathered() {
    let topic: Topic<Request<u32, u32>> = Topic::new();
    topic.subscribe_endpoint(Endpoint::from_fn(|m: Message<Request<u32, u32>>| {
        let _ = m.into_payload().reply(7); // at once, during the scatter's delivery
        Ok(())
    }));
    let _stalled = topic.subscribe_with(SubscribeOptions::new().capacity(1));
    let sg = ScatterGather::new(&topic);
    let first = sg.scatter(0, Completion::within(Duration::from_millis(1)));
    assert_eq!(
        first.map(|g| g.replies().len()),
        Ok(1),
        "and fills `_stalled`"
    );
    let g = sg
        .scatter(1, Completion::within(Duration::from_millis(20)))
        .unwrap();
    assert_eq!(
        g.expected(),
        1,
        "the closure; the stalled subscription was full"
    );
    assert_eq!(g.completed(), Completed::All);
    assert_eq!(
        g.replies().iter().map(|r| *r.body()).collect::<Vec<_>>(),
        [7]
    );
}

/// Responders that answer inline (closures) answer during the delivery, before any deadline:
/// a gather with no time at all still gathers them, and one whose responders all dropped the
/// request inline ends as `NoMoreReplies`, not at its deadline (found by review of the
/// deadline check before each wait).
#[test]
fn inline_answers_count_before_a_deadline_already_past() {
    type R = Request<u32, u32>;
    let replier = |n: u32| {
        Endpoint::from_fn(move |m: Message<R>| {
            let _ = m.into_payload().reply(n);
            Ok(())
        })
    };
    let dropper = || {
        Endpoint::from_fn(|m: Message<R>| {
            drop(m);
            Ok(())
        })
    };
    let answering = RecipientList::builder()
        .recipient("a", replier(1))
        .recipient("b", replier(2))
        .build();
    let silent = RecipientList::builder()
        .recipient("a", dropper())
        .recipient("b", dropper())
        .build();
    for (list, completed, replies) in [
        (answering, Completed::All, 2),
        (silent, Completed::NoMoreReplies, 0),
    ] {
        let sg = ScatterGather::new(&list);
        let got = sg.scatter(0, Completion::within(Duration::ZERO)).unwrap();
        assert_eq!((got.completed(), got.replies().len()), (completed, replies));
        let s = sg.stats();
        assert_eq!((s.timed_out, s.late), (0, 0), "{s:?}");
    }
}

/// A reply that comes after the deadline is late, also when it was the last responder's (its
/// reply releases the last return address): the gather ends at its deadline (found by review
/// of the check that lets a gather whose responders all let go end as `NoMoreReplies`).
#[test]
fn a_reply_after_the_deadline_is_late_even_from_the_last_responder() {
    let topic: Topic<Request<u32, u32>> = Topic::new();
    let sub = topic.subscribe();
    let (replied, replied_rx) = mpsc::channel::<()>();
    let deadline = Instant::now() + Duration::from_millis(20);
    let responder = thread::spawn(move || {
        let req = sub.recv_timeout(LONG).unwrap().into_payload();
        while Instant::now() < deadline + Duration::from_millis(30) {
            thread::sleep(Duration::from_millis(5));
        }
        req.reply(7).unwrap(); // after the deadline
        replied.send(()).unwrap();
    });
    let sg = ScatterGather::new(&topic);
    // A check that is busy until the reply came, past the deadline.
    let slow_check = move |_: &[Reply<u32>]| {
        let _ = replied_rx.recv_timeout(LONG);
        false
    };
    let g = sg
        .scatter(1, Completion::until(deadline).when(slow_check))
        .unwrap();
    responder.join().unwrap();
    let s = sg.stats();
    assert_eq!(
        (g.completed(), g.replies().len(), s.timed_out, s.late),
        (Completed::Deadline, 0, 1, 1)
    );
}

/// A reply that came during the delivery, long before the deadline, is gathered, also when the
/// delivery then waited out the deadline for room in another recipient and a third still holds
/// the request (the tests of inline replies had every responder gone by then).
#[test]
fn a_reply_that_came_before_a_delivery_waited_out_the_deadline_is_gathered() {
    type R = Request<u32, u32>;
    let replier = Endpoint::from_fn(|m: Message<R>| {
        let _ = m.into_payload().reply(7);
        Ok(())
    });
    let holder: Queue<R> = Queue::unbounded(); // takes the request, never answers
    let full: Queue<R> = Queue::bounded(1);
    // Filled with an earlier request, left unanswered in it.
    ScatterGather::<u32, u32>::new(&full)
        .scatter(0, Completion::within(Duration::ZERO))
        .unwrap();
    assert_eq!(full.len(), 1);
    let list = RecipientList::builder()
        .recipient("a", replier)
        .recipient("b", &holder)
        .recipient("c", &full)
        .build();
    let sg = ScatterGather::new(&list);
    let g = sg
        .scatter(1, Completion::within(Duration::from_millis(50)))
        .unwrap();
    assert_eq!((g.completed(), g.expected()), (Completed::Deadline, 2));
    assert_eq!(
        g.replies().iter().map(|r| *r.body()).collect::<Vec<_>>(),
        [7]
    );
    assert_eq!(
        (g.missing(), g.unreached()),
        (&["b".to_string()][..], &["c".to_string()][..])
    );
    assert_eq!(sg.stats().late, 0);
}
