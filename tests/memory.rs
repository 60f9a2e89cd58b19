//! Memory goals (DESIGN section 9): a queued message with no attributes costs its payload plus at
//! most 48 bytes, and an idle queue less than 1 KiB. Measured with a counting global allocator.
//!
//! The count is per thread: what the test harness allocates on its own threads meanwhile (a
//! finished test's report, say) is not the queue's. The code measured allocates and frees on
//! the measuring thread only.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use switchboard::Queue;

struct Counting;

thread_local! {
    /// Bytes this thread allocated and did not free. `const`-initialized and without a
    /// destructor, so the allocator may touch it.
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    // `try_with`: a thread being torn down has no counter any more; its frees are not ours.
    let _ = LIVE.try_with(|c| c.set(c.get() + delta));
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Prints what a burst left behind (`--nocapture` shows it) and fails if it reaches `bound`:
/// memory follows what is in the queue.
fn assert_gives_back(what: &str, kept: isize, bound: isize) {
    println!("kept after {what}: {kept} bytes");
    assert!(kept < bound, "after {what}, the queue keeps {kept} bytes");
}

fn bytes_for<R>(f: impl FnOnce() -> R) -> (R, isize) {
    let before = LIVE.with(Cell::get);
    let r = f();
    (r, LIVE.with(Cell::get) - before)
}

#[test]
fn an_idle_queue_is_under_a_kib() {
    let (q, idle) = bytes_for(Queue::<u64>::unbounded);
    println!("idle unbounded queue: {idle} bytes");
    assert!(idle < 1024, "an idle unbounded queue takes {idle} bytes");
    drop(q);
}

#[test]
fn a_queued_message_costs_its_payload_plus_at_most_48_bytes() {
    const N: usize = 31 * 1000; // whole blocks of the unbounded channel
    let q = Queue::<[u64; 4]>::unbounded();
    q.send([0; 4]).unwrap();
    q.recv().unwrap(); // the channel's first block exists now
    let ((), used) = bytes_for(|| {
        for i in 0..N as u64 {
            q.send([i; 4]).unwrap();
        }
    });
    let per_message = used as f64 / N as f64;
    println!("per queued message: {per_message:.1} bytes for a 32-byte payload");
    assert!(per_message <= 32.0 + 48.0, "{per_message} bytes a message");
}

#[test]
fn the_allocations_kept_for_later_leases_stay_within_4_kib() {
    let q = Queue::<[u64; 1024]>::unbounded();
    q.send([1; 1024]).unwrap();
    let ((), kept) = bytes_for(|| q.receive().unwrap().ack().unwrap());
    assert_gives_back("a leased receive and ack of an 8 KiB payload", kept, 4096);
}

/// Delayed messages wait outside the channel, in entries whose delivery history is out of
/// line (a message never delivered carries none): the goal holds for them too. Measured at a
/// whole power of two of the heap they wait in, so that no spare capacity counts. A FIFO
/// message's group key is metadata (out of line, with its group's bookkeeping): printed, not
/// held to the goal for messages without attributes.
#[test]
fn a_delayed_message_costs_its_payload_plus_at_most_48_bytes() {
    use std::time::Duration;
    use switchboard::Message;

    const N: usize = 1 << 14;
    let q = Queue::<[u64; 4]>::unbounded();
    // The first makes the queue's state for delays (once per queue, not per message).
    q.send_after([0; 4], Duration::from_secs(60)).unwrap();
    let ((), used) = bytes_for(|| {
        for i in 1..N as u64 {
            q.send_after([i; 4], Duration::from_secs(60)).unwrap();
        }
    });
    let delayed = used as f64 / (N - 1) as f64;
    println!("per delayed message: {delayed:.1} bytes for a 32-byte payload");

    let fifo = Queue::<[u64; 4]>::builder().fifo().build();
    fifo.send(Message::new([0; 4]).with_group("g")).unwrap(); // the group exists now
    let ((), used) = bytes_for(|| {
        for i in 1..N as u64 {
            fifo.send(Message::new([i; 4]).with_group("g")).unwrap();
        }
    });
    let grouped = used as f64 / (N - 1) as f64;
    println!(
        "per FIFO message in a group: {grouped:.1} bytes for a 32-byte payload and a group key"
    );
    assert!(delayed <= 32.0 + 48.0, "{delayed} bytes a delayed message");
}

/// The bytes a queue keeps after a burst of `N` messages leased at once and settled by
/// `settle`, which must leave the queue empty.
fn kept_after_a_burst(settle: impl FnOnce(&Queue<u64>, Vec<switchboard::Delivery<u64>>)) -> isize {
    use std::time::Duration;

    const N: u64 = 10_000;
    let q = Queue::<u64>::unbounded();
    let ((), kept) = bytes_for(|| {
        for i in 0..N {
            q.send(i).unwrap();
        }
        let batch = q.receive_many(N as usize, Duration::ZERO).unwrap();
        assert_eq!(batch.len() as u64, N);
        settle(&q, batch);
        assert!(q.is_empty());
    });
    kept
}

/// A burst gives its memory back: once 10,000 leases are settled and the messages they
/// returned are taken, the queue keeps only a few KiB (its spare allocations and the
/// channel's current block), not the burst's lease table, timers and returned-message lane.
#[test]
fn a_burst_of_leases_gives_its_memory_back() {
    let kept = kept_after_a_burst(|q, batch| {
        // All dropped: back to the queue, in its lane for returns; then all leased again and
        // acked at once.
        let n = batch.len();
        drop(batch);
        let batch = q.receive_many(n, std::time::Duration::ZERO).unwrap();
        assert_eq!(batch.len(), n);
        assert!(q.ack_many(batch).is_empty());
    });
    assert_gives_back("a burst of leases", kept, 16 * 1024);
}

/// A burst settled by single acks gives its memory back too, as the queue docs say ("given
/// back once it is over (no lease out ...)"), without waiting for some later event (found by
/// review: only a batch ack, a nack or a receive past a lease's old deadline freed the table,
/// so a queue whose burst was acked one by one and then went quiet kept it).
#[test]
fn a_burst_acked_one_by_one_gives_its_memory_back() {
    let kept = kept_after_a_burst(|_, batch| {
        for d in batch {
            d.ack().unwrap();
        }
    });
    assert_gives_back("a burst of leases acked one by one", kept, 16 * 1024);
}

/// A burst of delayed messages gives back its delay heap once they have all come due and been
/// taken (the lease table and ready lane are the other tests' part).
#[test]
fn a_burst_of_delays_gives_its_memory_back() {
    use std::time::Duration;
    use switchboard::ManualClock;

    const N: u64 = 10_000;
    let clock = ManualClock::new();
    let q = Queue::<u64>::builder().clock(clock.clone()).build();
    q.send(0).unwrap();
    q.recv().unwrap(); // the channel's first block exists now
    let ((), kept) = bytes_for(|| {
        for i in 0..N {
            q.send_after(i, Duration::from_secs(1)).unwrap();
        }
        clock.advance(Duration::from_secs(1));
        assert_eq!(q.try_iter().count() as u64, N);
        assert!(q.is_empty());
    });
    assert_gives_back(&format!("a burst of {N} delayed messages"), kept, 16 * 1024);
}

/// A FIFO queue gives back what a burst took: over many groups (the group slab, its index and
/// lists), and in one group (its buffer). Found by review: 1.6 MB and 655 KB were kept for the
/// queue's life after bursts of 10,000 messages.
#[test]
fn a_fifo_burst_gives_its_memory_back() {
    use std::time::Duration;
    use switchboard::Message;

    const N: u64 = 10_000;
    for many_groups in [true, false] {
        let q = Queue::<u64>::builder().fifo().build();
        q.send(Message::new(0).with_group("warm")).unwrap();
        q.receive().unwrap().ack().unwrap();
        let ((), kept) = bytes_for(|| {
            for i in 0..N {
                let group = if many_groups {
                    format!("g{i}")
                } else {
                    "g".into()
                };
                q.send(Message::new(i).with_group(group)).unwrap();
            }
            if many_groups {
                let batch = q.receive_many(N as usize, Duration::ZERO).unwrap();
                assert_eq!(batch.len() as u64, N);
                assert!(q.ack_many(batch).is_empty());
            } else {
                for _ in 0..N {
                    q.receive().unwrap().ack().unwrap();
                }
            }
            assert!(q.is_empty() && q.stats().in_flight == 0);
        });
        // Many groups: the idle groups kept for reuse (64, each with its key and a small
        // buffer) and a slab of at most four times as many slots stay, whatever the burst.
        let bound = if many_groups { 64 * 1024 } else { 16 * 1024 };
        let what = format!("a FIFO burst of {N} (many groups: {many_groups})");
        assert_gives_back(&what, kept, bound);
    }
}

/// A FIFO dead-letter queue that is only redriven gives back a burst's group slab too (found by
/// review: the redrive's drain freed the groups but never compacted, 1.6 MB kept).
#[test]
fn a_fifo_dead_letter_queue_gives_back_a_redriven_burst() {
    use std::time::Duration;
    use switchboard::Message;

    const N: u64 = 10_000;
    let dlq = Queue::<u64>::builder().fifo().build();
    let q = Queue::<u64>::builder().fifo().dead_letter(&dlq, 1).build();
    q.send(Message::new(0).with_group("warm")).unwrap();
    q.receive().unwrap().nack().unwrap();
    assert_eq!(dlq.redrive(), 1);
    q.receive().unwrap().ack().unwrap();
    let ((), kept) = bytes_for(|| {
        for i in 0..N {
            q.send(Message::new(i).with_group(format!("g{i}"))).unwrap();
        }
        for d in q.receive_many(N as usize, Duration::ZERO).unwrap() {
            d.nack().unwrap();
        }
        assert_eq!(dlq.redrive() as u64, N);
        let batch = q.receive_many(N as usize, Duration::ZERO).unwrap();
        assert_eq!(batch.len() as u64, N);
        assert!(q.ack_many(batch).is_empty());
        assert!(q.is_empty() && dlq.is_empty() && q.stats().in_flight == 0);
    });
    assert_gives_back(&format!("a redriven FIFO burst of {N}"), kept, 64 * 1024);
}

/// A burst of de-duplication keys gives its memory back once the keys aged out of the window
/// (found by review: 1.3 MB kept after 10,000 keys), whatever the traffic after them: another
/// de-duplicated send, or plain ones only (found by review: the keys stayed until the next
/// de-duplicated send, 11.8 MB for 100,000 of them an hour after they aged out).
#[test]
fn a_burst_of_dedup_keys_gives_its_memory_back_once_they_age_out() {
    use std::time::Duration;
    use switchboard::{ManualClock, Message};

    const N: u64 = 10_000;
    for dedup_after in [true, false] {
        let clock = ManualClock::new();
        let q = Queue::<u64>::builder()
            .clock(clock.clone())
            .dedup_window(Duration::from_secs(60))
            .build();
        q.send(Message::new(0).with_dedup_id("warm")).unwrap();
        q.receive().unwrap().ack().unwrap();
        let ((), kept) = bytes_for(|| {
            for i in 0..N {
                q.send(Message::new(i).with_dedup_id(format!("k{i}")))
                    .unwrap();
            }
            assert_eq!(q.try_iter().count() as u64, N);
            clock.advance(Duration::from_secs(3600)); // every key aged out
            for i in 0..10 {
                let m = Message::new(i);
                q.send(if dedup_after {
                    m.with_dedup_id(format!("late{i}"))
                } else {
                    m
                })
                .unwrap();
                q.receive().unwrap().ack().unwrap();
            }
        });
        let then = if dedup_after {
            "a dedup send"
        } else {
            "plain sends"
        };
        assert_gives_back(
            &format!("{N} dedup keys aged out, then {then}"),
            kept,
            16 * 1024,
        );
    }
}

/// A message back in the queue after a lease (nacked, or its delivery dropped without a
/// verdict) waits by value with two words of history: its payload plus at most 48 bytes, as a
/// fresh one (found by review: it kept the allocation it was leased in and a five-field
/// record, 144 bytes over its payload).
#[test]
fn a_returned_message_costs_its_payload_plus_at_most_48_bytes() {
    use std::time::Duration;

    const N: usize = 4096; // a whole power of two: the ready lane's capacity fits exactly
    for how in ["nack", "drop"] {
        let q = Queue::<[u64; 4]>::unbounded();
        // The queue's state for leases, and the channel's first block, exist now.
        q.send([0; 4]).unwrap();
        q.receive().unwrap().ack().unwrap();
        let ((), used) = bytes_for(|| {
            for i in 0..N as u64 {
                q.send([i; 4]).unwrap();
            }
            let batch = q.receive_many(N, Duration::ZERO).unwrap();
            assert_eq!(batch.len(), N);
            match how {
                "nack" => batch.into_iter().for_each(|d| d.nack().unwrap()),
                _ => drop(batch),
            }
        });
        let s = q.stats();
        assert_eq!((s.visible, s.in_flight), (N, 0));
        // The allocations kept for later leases (under 4 KiB) are not the messages' cost.
        let per_message = (used - 4096).max(0) as f64 / N as f64;
        println!("per message returned by {how}: {per_message:.1} bytes for a 32-byte payload");
        assert!(
            per_message <= 32.0 + 48.0,
            "{how}: {per_message} bytes a message"
        );
        // And they come back out whole, with their history.
        let d = q.try_receive().unwrap();
        assert_eq!((d.attempt(), *d.payload()), (2, [0; 4]));
        d.ack().unwrap();
    }
}

/// A message read back through serde with no attributes or other metadata allocates nothing
/// beyond its payload, as `Message::new` does (found by review: 200 bytes of metadata each).
#[test]
fn a_deserialized_message_without_metadata_allocates_nothing() {
    use switchboard::{Attributes, Message};

    let json = serde_json::to_string(&Message::new([7u64; 4])).unwrap();
    let (m, bytes) = bytes_for(|| serde_json::from_str::<Message<[u64; 4]>>(&json).unwrap());
    assert_eq!(bytes, 0, "{json}");
    assert_eq!(*m.payload(), [7; 4]);
    let (m, bytes) = bytes_for(|| m.with_attributes(Attributes::new()));
    assert_eq!(bytes, 0);
    // With an attribute, it has its metadata back.
    let with = Message::new(1u8).with_attr("k", "v");
    let json = serde_json::to_string(&with).unwrap();
    let back: Message<u8> = serde_json::from_str(&json).unwrap();
    assert_eq!(
        back.attributes().get("k").and_then(|v| v.as_str()),
        Some("v")
    );
    drop(m);
}

/// A burst in one FIFO group, or in the delay heap, is given back while a few messages still
/// wait there (found by review: 5 MB kept while a group held two messages, 7 MB while one
/// message delayed until tomorrow stayed in the heap).
#[test]
fn a_burst_is_given_back_while_a_few_messages_remain() {
    use std::time::Duration;
    use switchboard::{ManualClock, Message};

    const N: u64 = 20_000;
    let q = Queue::<u64>::builder().fifo().build();
    q.send(Message::new(0).with_group("g")).unwrap();
    q.receive().unwrap().ack().unwrap();
    let ((), kept) = bytes_for(|| {
        for i in 0..N {
            q.send(Message::new(i).with_group("g")).unwrap();
        }
        for _ in 0..N - 2 {
            q.receive().unwrap().ack().unwrap();
        }
        assert_eq!(q.len(), 2);
    });
    assert_gives_back("a burst in a FIFO group, two left", kept, 16 * 1024);

    let clock = ManualClock::new();
    let q = Queue::<u64>::builder().clock(clock.clone()).build();
    q.send_after(0, Duration::from_secs(1)).unwrap();
    clock.advance(Duration::from_secs(1));
    q.recv().unwrap();
    let ((), kept) = bytes_for(|| {
        q.send_after(u64::MAX, Duration::from_secs(86_400)).unwrap(); // tomorrow's job
        for i in 0..N {
            q.send_after(i, Duration::from_secs(1)).unwrap();
        }
        clock.advance(Duration::from_secs(2));
        assert_eq!(q.try_iter().count() as u64, N);
        assert_eq!(q.stats().delayed, 1);
    });
    // Tomorrow's job is still in the heap: its entry is what remains.
    assert_gives_back("a burst of delays, one left", kept, 16 * 1024);

    let q = Queue::<u64>::unbounded();
    q.send(0).unwrap();
    q.receive().unwrap().ack().unwrap();
    let ((), kept) = bytes_for(|| {
        q.send_batch(0..N).unwrap();
        let leased = q.receive_many(N as usize, Duration::ZERO).unwrap();
        drop(leased); // all back, in the lane of returned messages
        for _ in 0..N - 2 {
            q.receive().unwrap().ack().unwrap();
        }
        assert_eq!(q.len(), 2);
    });
    assert_gives_back("a burst of returned messages, two left", kept, 16 * 1024);
}

/// A topic gives back its filter index once the filtered subscriptions are gone, and a thread
/// that published to a large topic does not keep scratch buffers of that size for its life
/// (found by review: 1.6 MB kept after 20,000 filtered subscriptions; 800 KB per publishing
/// thread after one publish to 100,000 subscriptions).
#[test]
fn a_topic_and_its_publishers_give_back_what_a_large_fan_out_took() {
    use switchboard::{Filter, Message, Overflow, SubscribeOptions, Topic};

    let opts = SubscribeOptions::new()
        .capacity(1)
        .overflow(Overflow::DropOldest);
    let topic = Topic::<u64>::new();
    let ((), kept) = bytes_for(|| {
        let subs: Vec<_> = (0..20_000)
            .map(|i| {
                let f = Filter::from_json(&format!(r#"{{"tenant": ["t{i}"]}}"#)).unwrap();
                topic.subscribe_filtered_with(f, opts)
            })
            .collect();
        drop(subs);
        assert_eq!(topic.subscriber_count(), 0);
    });
    assert_gives_back(
        "20,000 filtered subscriptions came and went",
        kept,
        64 * 1024,
    );

    let ((), kept) = bytes_for(|| {
        let topic = Topic::<u64>::new();
        let subs: Vec<_> = (0..50_000).map(|_| topic.subscribe_with(opts)).collect();
        let f = Filter::from_json(r#"{"k": ["v"]}"#).unwrap();
        let filtered = topic.subscribe_filtered_with(f, opts);
        topic.publish(Message::new(1).with_attr("k", "v")).unwrap();
        drop((subs, filtered, topic));
    });
    assert_gives_back("a publish to 50,000 subscriptions", kept, 64 * 1024);
}
