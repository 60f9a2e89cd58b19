//! A worker pool resizing images: flaky failures are retried with backoff, corrupt images go
//! straight to the dead-letter queue (no retry fixes them), and a report at the end accounts for
//! every job.
//!
//! Run with `cargo run --example workers`.

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use switchboard::{Consumer, Failure, Jitter, Queue, RetryPolicy};

/// One job: an image to shrink to a width.
#[derive(Debug)]
struct Resize {
    name: String,
    width: u32,
    height: u32,
    target_width: u32,
    corrupt: bool,
}

/// Why a resize failed.
#[derive(Debug)]
enum ResizeError {
    /// The storage timed out: worth retrying.
    StorageTimeout,
    /// The file cannot be decoded: retrying will not help.
    Corrupt(String),
}

impl fmt::Display for ResizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResizeError::StorageTimeout => f.write_str("storage timed out"),
            ResizeError::Corrupt(name) => write!(f, "cannot decode {name}"),
        }
    }
}

impl std::error::Error for ResizeError {}

fn main() {
    // The queue gives each job 3 attempts; jobs that fail all of them go to `failed`.
    let failed = Queue::builder().name("resize-failed").build();
    let jobs = Queue::builder()
        .name("resize")
        .visibility_timeout(Duration::from_secs(5))
        .dead_letter(&failed, 3)
        .build();

    for i in 0..40u32 {
        jobs.send(Resize {
            name: format!("photo-{i:02}.jpg"),
            width: 4000 + i * 10,
            height: 3000,
            target_width: 800,
            corrupt: i % 13 == 5, // photo-05, photo-18 and photo-31 are broken
        })
        .unwrap();
    }
    println!("queued {} resize jobs", jobs.len());

    // Flaky storage: every 7th read times out, whatever the image.
    let reads = Arc::new(AtomicU32::new(0));
    let pool = {
        let reads = Arc::clone(&reads);
        Consumer::new(&jobs)
            .workers(4)
            .retry(
                RetryPolicy::exponential(Duration::from_millis(5), Duration::from_millis(50))
                    .jitter(Jitter::Equal),
            )
            .start(move |msg| -> Result<(), Failure> {
                let job = msg.payload();
                let failure = if reads.fetch_add(1, Ordering::Relaxed) % 7 == 6 {
                    Some(ResizeError::StorageTimeout)
                } else if job.corrupt {
                    Some(ResizeError::Corrupt(job.name.clone()))
                } else {
                    None
                };
                match failure {
                    // Poison: rejected at once, to the dead-letter queue.
                    Some(e @ ResizeError::Corrupt(_)) => {
                        println!("  reject  {}: {e}", job.name);
                        return Err(Failure::reject(e));
                    }
                    // The pool retries after a backoff, or dead-letters on the third attempt.
                    Some(e) => {
                        println!("  failed  {}: {e}", job.name);
                        return Err(e.into());
                    }
                    None => {}
                }
                let target_height = job.height * job.target_width / job.width;
                std::thread::sleep(Duration::from_millis(2)); // the "resize"
                println!(
                    "  resized {} {}x{} -> {}x{}",
                    job.name, job.width, job.height, job.target_width, target_height
                );
                Ok(())
            })
    };
    println!("started a pool of {} workers", pool.workers());

    // No more jobs: the workers end once every job is acked or dead-lettered.
    jobs.close();
    let stats = pool.join();

    println!("\npool stats:");
    println!("  processed      {}", stats.processed);
    println!("  failed         {} (attempts)", stats.failed);
    println!("  retried        {}", stats.retried);
    println!(
        "  dead-lettered  {} ({} rejected at once)",
        stats.dead_lettered, stats.rejected
    );
    println!("  handler time   {:?}", stats.handler_time);

    let q = jobs.stats();
    println!(
        "\nqueue stats: acked {}, redelivered {}, in flight {}, visible {}",
        q.acked, q.redelivered, q.in_flight, q.visible
    );

    println!("\ndead-letter report ({} jobs):", failed.len());
    for msg in failed.try_iter() {
        let dead = msg.dead_letter().expect("a dead letter");
        println!(
            "  {:<16} after {} attempts from {:?}: {}",
            msg.payload().name,
            dead.attempts(),
            dead.source().unwrap_or("?"),
            dead.reason()
        );
    }
    assert_eq!(
        q.acked + stats.dead_lettered,
        40,
        "every job is accounted for"
    );
    println!("\nall 40 jobs accounted for");
}
