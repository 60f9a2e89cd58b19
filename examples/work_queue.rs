//! Competing consumers with leases; a poison message lands in the dead-letter queue.
//!
//! Run it with `cargo run --release --example work_queue`.

use std::thread;
use std::time::Duration;

use switchboard::{Message, Queue};

#[derive(Debug, Clone)]
struct Job {
    id: u32,
    body: String,
}

fn process(job: &Job) -> Result<(), String> {
    if job.body.contains("poison") {
        return Err(format!("job {} cannot be parsed", job.id));
    }
    // Stands in for real work. Without it, whichever worker is awake drains the queue before
    // the others wake, and the output shows one worker doing everything.
    thread::sleep(Duration::from_micros(300));
    Ok(())
}

fn main() {
    let dlq: Queue<Job> = Queue::builder().name("jobs-dlq").build();
    let jobs = Queue::builder()
        .name("jobs")
        .capacity(128)
        .visibility_timeout(Duration::from_secs(5))
        .dead_letter(&dlq, 3)
        .build();

    thread::scope(|s| {
        // The workers start first: the queue holds 128 jobs at most, so the producer below
        // waits for room while they work (backpressure).
        for worker in 0..3 {
            let jobs = jobs.clone();
            s.spawn(move || {
                let (mut done, mut failed) = (0, 0);
                // `receive` returns Closed only once nothing is visible, delayed or in flight.
                while let Ok(delivery) = jobs.receive() {
                    match process(delivery.payload()) {
                        Ok(()) => {
                            delivery.ack().expect("lease held");
                            done += 1;
                        }
                        Err(e) => {
                            println!(
                                "worker {worker}: attempt {} failed: {e}",
                                delivery.attempt()
                            );
                            delivery.nack().expect("lease held");
                            failed += 1;
                        }
                    }
                }
                println!("worker {worker}: {done} done, {failed} failed attempts");
            });
        }

        for id in 0..200 {
            let body = if id == 42 {
                "poison".to_string()
            } else {
                format!("payload {id}")
            };
            jobs.send(Message::new(Job { id, body }).with_attr("kind", "resize"))
                .unwrap();
        }
        jobs.close(); // no more jobs; workers stop once everything is settled
    });

    let s = jobs.stats();
    println!(
        "jobs: sent {}, acked {}, nacked {}, dead-lettered {}",
        s.sent, s.acked, s.nacked, s.dead_lettered
    );
    for dead in dlq.try_iter() {
        let info = dead.dead_letter().expect("dead letters carry their record");
        println!(
            "dead letter: job {} from {:?}: {}",
            dead.payload().id,
            info.source(),
            info.reason()
        );
    }
    assert_eq!(s.acked, 199);
    assert_eq!(s.dead_lettered, 1);
}
