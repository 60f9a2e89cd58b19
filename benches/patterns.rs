//! Conversation and routing patterns against hand-written crossbeam-channel equivalents, side by
//! side in one run:
//!
//! - `request_reply`: one round trip to a responder thread. The baseline is a crossbeam ping-pong
//!   over two preallocated channels; ours is `Requester::request` through a `Queue` (a fresh
//!   correlation id, a private reply inbox and a typed return address per request). The
//!   `inline_*` lines run the same round trip on one thread, without wake-ups: the path's own
//!   cost.
//! - `scatter_gather_4`: one request to 4 responder threads, all 4 replies gathered. The baseline
//!   sends on 4 channels and receives 4 replies on a shared one (no correlation, no isolation of
//!   late replies); ours scatters through a `Topic` and through a `RecipientList` of 4 queues.
//! - `recipient_list_3`: one message routed to 3 queues and received back, on one thread. The
//!   baseline sends on 3 crossbeam channels; `queues_by_hand` sends on 3 switchboard queues
//!   directly (the queues' own cost); ours routes by a static list and by an attribute.

use std::hint::black_box;
use std::thread;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use crossbeam_channel as cb;
use switchboard::{
    Completion, Endpoint, Message, Queue, RecipientList, Request, Requester, Route, ScatterGather,
    Topic,
};

const WAIT: Duration = Duration::from_secs(10);

fn request_reply(c: &mut Criterion) {
    let mut group = c.benchmark_group("request_reply");

    group.bench_function("crossbeam", |b| {
        let (req_tx, req_rx) = cb::bounded::<u64>(1);
        let (rep_tx, rep_rx) = cb::bounded::<u64>(1);
        let responder = thread::spawn(move || {
            for x in req_rx {
                if rep_tx.send(x + 1).is_err() {
                    break;
                }
            }
        });
        let mut i = 0u64;
        b.iter(|| {
            req_tx.send(i).unwrap();
            let r = rep_rx.recv().unwrap();
            i += 1;
            black_box(r)
        });
        drop(req_tx);
        responder.join().unwrap();
    });

    group.bench_function("switchboard", |b| {
        let service: Queue<Request<u64, u64>> = Queue::unbounded();
        let responder = {
            let service = service.clone();
            thread::spawn(move || {
                for m in &service {
                    let req = m.into_payload();
                    let x = *req.body();
                    let _ = req.reply(x + 1);
                }
            })
        };
        let requester = Requester::new(&service);
        let mut i = 0u64;
        b.iter(|| {
            let r = requester.request(i, WAIT).unwrap();
            i += 1;
            black_box(r)
        });
        service.close();
        responder.join().unwrap();
    });

    // The same ping-pong over two switchboard queues (no request-reply layer): the queue's share.
    group.bench_function("queue_pingpong", |b| {
        let (req, rep) = (Queue::<u64>::unbounded(), Queue::<u64>::unbounded());
        let responder = {
            let (req, rep) = (req.clone(), rep.clone());
            thread::spawn(move || {
                for m in &req {
                    let x = m.into_payload();
                    let _ = rep.send(x + 1);
                }
            })
        };
        let mut i = 0u64;
        b.iter(|| {
            req.send(i).unwrap();
            let r = rep.recv().unwrap().into_payload();
            i += 1;
            black_box(r)
        });
        req.close();
        responder.join().unwrap();
    });

    // Request-reply with the responder on a topic subscription.
    group.bench_function("switchboard_topic", |b| {
        let topic: Topic<Request<u64, u64>> = Topic::new();
        let sub = topic.subscribe();
        let responder = thread::spawn(move || {
            for m in &sub {
                let req = m.into_payload();
                let x = *req.body();
                let _ = req.reply(x + 1);
            }
        });
        let requester = Requester::new(&topic);
        let mut i = 0u64;
        b.iter(|| {
            let r = requester.request(i, WAIT).unwrap();
            i += 1;
            black_box(r)
        });
        topic.close();
        responder.join().unwrap();
    });

    // The same round trip on one thread (the responder is called inline): no wake-ups, so what is
    // left is the path's own cost (ids, the inbox, the return address, the typed wrapper).
    group.bench_function("inline_crossbeam", |b| {
        let (req_tx, req_rx) = cb::bounded::<u64>(1);
        let (rep_tx, rep_rx) = cb::bounded::<u64>(1);
        let mut i = 0u64;
        b.iter(|| {
            req_tx.send(i).unwrap();
            let x = req_rx.recv().unwrap();
            rep_tx.send(x + 1).unwrap();
            i += 1;
            black_box(rep_rx.recv().unwrap())
        });
    });

    group.bench_function("inline_switchboard", |b| {
        let responder = Endpoint::from_fn(|m: Message<Request<u64, u64>>| {
            let req = m.into_payload();
            let x = *req.body();
            let _ = req.reply(x + 1);
            Ok(())
        });
        let requester = Requester::new(responder);
        let mut i = 0u64;
        b.iter(|| {
            let r = requester.request(i, WAIT).unwrap();
            i += 1;
            black_box(r)
        });
    });
    group.finish();
}

fn scatter_gather(c: &mut Criterion) {
    const N: usize = 4;
    let mut group = c.benchmark_group("scatter_gather_4");

    group.bench_function("crossbeam", |b| {
        let (rep_tx, rep_rx) = cb::unbounded::<(usize, u64)>();
        let (txs, handles): (Vec<_>, Vec<_>) = (0..N)
            .map(|k| {
                let (tx, rx) = cb::unbounded::<u64>();
                let rep_tx = rep_tx.clone();
                let h = thread::spawn(move || {
                    for x in rx {
                        let _ = rep_tx.send((k, x + k as u64));
                    }
                });
                (tx, h)
            })
            .unzip();
        let mut i = 0u64;
        b.iter(|| {
            for tx in &txs {
                tx.send(i).unwrap();
            }
            let mut best = u64::MAX;
            for _ in 0..N {
                best = best.min(rep_rx.recv().unwrap().1);
            }
            i += 1;
            black_box(best)
        });
        drop(txs);
        handles.into_iter().for_each(|h| h.join().unwrap());
    });

    group.bench_function("switchboard_topic", |b| {
        let topic: Topic<Request<u64, u64>> = Topic::new();
        let handles: Vec<_> = (0..N)
            .map(|k| {
                let sub = topic.subscribe();
                thread::spawn(move || {
                    for m in &sub {
                        let req = m.into_payload();
                        let x = *req.body();
                        let _ = req.reply(x + k as u64);
                    }
                })
            })
            .collect();
        let sg = ScatterGather::new(&topic);
        let mut i = 0u64;
        b.iter(|| {
            let got = sg.scatter(i, Completion::within(WAIT)).unwrap();
            i += 1;
            black_box(got.fold(u64::MAX, |m, r| m.min(*r.body())))
        });
        topic.close();
        handles.into_iter().for_each(|h| h.join().unwrap());
    });

    group.bench_function("switchboard_recipient_list", |b| {
        let list: RecipientList<Request<u64, u64>> = RecipientList::new(Route::all());
        let (queues, handles): (Vec<_>, Vec<_>) = (0..N)
            .map(|k| {
                let q: Queue<Request<u64, u64>> = Queue::unbounded();
                list.add(format!("r{k}"), &q);
                let rq = q.clone();
                let h = thread::spawn(move || {
                    for m in &rq {
                        let req = m.into_payload();
                        let x = *req.body();
                        let _ = req.reply(x + k as u64);
                    }
                });
                (q, h)
            })
            .unzip();
        let sg = ScatterGather::new(&list);
        let mut i = 0u64;
        b.iter(|| {
            let got = sg.scatter(i, Completion::within(WAIT)).unwrap();
            i += 1;
            black_box(got.fold(u64::MAX, |m, r| m.min(*r.body())))
        });
        queues.iter().for_each(|q| {
            q.close();
        });
        handles.into_iter().for_each(|h| h.join().unwrap());
    });
    group.finish();
}

fn recipient_list(c: &mut Criterion) {
    let mut group = c.benchmark_group("recipient_list_3");

    group.bench_function("crossbeam", |b| {
        let chans: Vec<_> = (0..3).map(|_| cb::unbounded::<u64>()).collect();
        let mut i = 0u64;
        b.iter(|| {
            for (tx, _) in &chans {
                tx.send(i).unwrap();
            }
            let mut sum = 0;
            for (_, rx) in &chans {
                sum += rx.try_recv().unwrap();
            }
            i += 1;
            black_box(sum)
        });
    });

    let queues: Vec<Queue<u64>> = (0..3).map(|_| Queue::unbounded()).collect();
    let drain = |queues: &[Queue<u64>]| {
        let mut sum = 0;
        for q in queues {
            sum += q.try_recv().unwrap().into_payload();
        }
        sum
    };

    // The queues alone, sent to by hand: what the list adds is the rest.
    group.bench_function("queues_by_hand", |b| {
        let mut i = 0u64;
        b.iter(|| {
            for q in &queues {
                q.send(i).unwrap();
            }
            i += 1;
            black_box(drain(&queues))
        });
    });

    group.bench_function("switchboard_static", |b| {
        let list = RecipientList::new(Route::to(["a", "b", "c"]));
        for (name, q) in ["a", "b", "c"].into_iter().zip(&queues) {
            list.add(name, q);
        }
        let mut i = 0u64;
        b.iter(|| {
            let report = list.send(i).unwrap();
            i += 1;
            black_box(report);
            black_box(drain(&queues))
        });
    });

    group.bench_function("switchboard_attribute", |b| {
        let list = RecipientList::new(Route::by_attribute("recipients"));
        for (name, q) in ["a", "b", "c"].into_iter().zip(&queues) {
            list.add(name, q);
        }
        let template = Message::new(0u64).with_attr("recipients", ["a", "b", "c"]);
        let mut i = 0u64;
        b.iter(|| {
            let mut m = template.clone();
            *m.payload_mut() = i;
            let report = list.send(m).unwrap();
            i += 1;
            black_box(report);
            black_box(drain(&queues))
        });
    });
    group.finish();
}

criterion_group!(benches, request_reply, scatter_gather, recipient_list);
criterion_main!(benches);
