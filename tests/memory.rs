//! Memory goals (DESIGN section 9): a queued message with no attributes costs its payload plus at
//! most 48 bytes, and an idle queue less than 1 KiB. Measured with a counting global allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Mutex;

use switchboard::Queue;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::SeqCst);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::SeqCst);
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Tests in this file measure one global counter: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn bytes_for<R>(f: impl FnOnce() -> R) -> (R, isize) {
    let before = LIVE.load(Ordering::SeqCst);
    let r = f();
    (r, LIVE.load(Ordering::SeqCst) - before)
}

#[test]
fn an_idle_queue_is_under_a_kib() {
    let _g = SERIAL.lock().unwrap();
    let (q, idle) = bytes_for(Queue::<u64>::unbounded);
    println!("idle unbounded queue: {idle} bytes");
    assert!(idle < 1024, "an idle unbounded queue takes {idle} bytes");
    drop(q);
}

#[test]
fn a_queued_message_costs_its_payload_plus_at_most_48_bytes() {
    let _g = SERIAL.lock().unwrap();
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
