//! `Bulkhead`: never more than `max` calls at once, a bounded queue with a bounded wait, and every
//! slot freed whether the call ends, is cancelled or panics.

mod common;

use std::future::pending;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{ms, secs};
use reliability::{Bulkhead, Error, registry};
use tokio::time::{Instant, advance, sleep, timeout};

/// Counts the calls running in the bulkhead, and the most ever seen at once: the test's own gauge.
#[derive(Default)]
struct Gauge {
    running: AtomicUsize,
    most: AtomicUsize,
}

/// One call in the gauge, leaving it when dropped (end, cancellation or panic).
struct InGauge<'a>(&'a Gauge);

impl Gauge {
    fn enter(&self) -> InGauge<'_> {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        InGauge(self)
    }
}

impl Drop for InGauge<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

fn full(name: &str, max: u32, queue: u32) -> Error {
    Error::BulkheadFull {
        name: name.into(),
        max,
        queue,
    }
}

/// 256 callers on two worker threads; one in sixteen panics in its body, one in sixteen hangs and
/// is cancelled by a timeout (while queued or while running).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulkhead_of_four_never_runs_a_fifth_call_and_frees_every_slot() {
    let bulkhead = Bulkhead::builder("bh.gauge", 4)
        .queue(256)
        .wait(secs(600))
        .build()
        .unwrap();
    let gauge = Arc::new(Gauge::default());
    let callers: Vec<_> = (0..256_u32)
        .map(|i| {
            let bulkhead = bulkhead.clone();
            let gauge = gauge.clone();
            tokio::spawn(async move {
                let call = bulkhead.run(async {
                    let _in = gauge.enter();
                    tokio::task::yield_now().await;
                    sleep(ms(1)).await;
                    match i % 16 {
                        5 => panic!("the body of call {i} panics"),
                        9 => pending().await,
                        _ => Ok::<_, Error>(i),
                    }
                });
                if i % 16 == 9 {
                    timeout(ms(5), call).await
                } else {
                    Ok(call.await)
                }
            })
        })
        .collect();
    let (mut ok, mut panicked, mut cancelled) = (0, 0, 0);
    for caller in callers {
        match caller.await {
            Ok(Ok(out)) => {
                out.unwrap();
                ok += 1;
            }
            Ok(Err(_elapsed)) => cancelled += 1,
            Err(e) => {
                assert!(e.is_panic());
                panicked += 1;
            }
        }
    }
    assert_eq!((ok, panicked, cancelled), (224, 16, 16));
    assert!(
        gauge.most.load(Ordering::SeqCst) <= 4,
        "{} calls ran at once",
        gauge.most.load(Ordering::SeqCst)
    );
    assert_eq!(gauge.running.load(Ordering::SeqCst), 0);
    assert_eq!(bulkhead.available(), 4, "every slot is free again");
    // The queue's places were given back too: four run and 256 queue again.
    let slots: Vec<_> = futures::future::join_all((0..4).map(|_| bulkhead.acquire())).await;
    assert!(slots.iter().all(Result::is_ok));
    let stats = registry().snapshot();
    let stats = stats.bulkhead("bh.gauge").unwrap();
    assert_eq!((stats.calls, stats.rejections), (260, 0));
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_rejects_at_once_and_a_queued_call_waits_at_most_the_wait() {
    let bulkhead = Bulkhead::builder("bh.queue", 1)
        .queue(1)
        .wait(secs(1))
        .build()
        .unwrap();
    let held = bulkhead.acquire().await.unwrap();
    let start = Instant::now();
    let queued = tokio::spawn({
        let bulkhead = bulkhead.clone();
        async move {
            let out = bulkhead.acquire().await.map(drop);
            (out, start.elapsed())
        }
    });
    tokio::task::yield_now().await;
    // One running, one queued: a third caller is rejected at once.
    assert_eq!(
        bulkhead.acquire().await.map(drop),
        Err(full("bh.queue", 1, 1))
    );
    assert_eq!(start.elapsed(), Duration::ZERO);
    let (out, waited) = queued.await.unwrap();
    assert_eq!(out, Err(full("bh.queue", 1, 1)));
    assert_eq!(waited, secs(1), "rejected after exactly the wait");
    drop(held);
    let stats = registry().snapshot();
    let stats = stats.bulkhead("bh.queue").unwrap();
    assert_eq!((stats.calls, stats.waited, stats.rejections), (3, 1, 2));
}

#[tokio::test(start_paused = true)]
async fn queued_calls_get_freed_slots_in_order() {
    let bulkhead = Bulkhead::builder("bh.order", 1).queue(8).build().unwrap();
    let held = bulkhead.acquire().await.unwrap();
    let order = Arc::new(std::sync::Mutex::new(Vec::new()));
    let waiters: Vec<_> = (0..3)
        .map(|i| {
            let bulkhead = bulkhead.clone();
            let order = order.clone();
            tokio::spawn(async move {
                bulkhead
                    .run(async {
                        order.lock().unwrap().push(i);
                        sleep(ms(10)).await;
                        Ok::<_, Error>(())
                    })
                    .await
            })
        })
        .collect();
    // Let each waiter queue before the next one starts.
    for _ in 0..3 {
        tokio::task::yield_now().await;
    }
    advance(ms(100)).await;
    drop(held);
    for waiter in waiters {
        waiter.await.unwrap().unwrap();
    }
    assert_eq!(*order.lock().unwrap(), [0, 1, 2]);
}

#[tokio::test(start_paused = true)]
async fn a_slot_is_freed_when_its_call_panics_or_is_cancelled() {
    let bulkhead = Bulkhead::builder("bh.freed", 2).build().unwrap();
    let panicking = tokio::spawn({
        let bulkhead = bulkhead.clone();
        async move {
            bulkhead
                .run(async {
                    sleep(ms(1)).await;
                    panic!("the body panics");
                    #[allow(unreachable_code)]
                    Ok::<(), Error>(())
                })
                .await
        }
    });
    assert!(panicking.await.unwrap_err().is_panic());
    assert_eq!(bulkhead.available(), 2);

    let mut running = Box::pin(bulkhead.run(pending::<Result<(), Error>>()));
    assert!(futures::poll!(running.as_mut()).is_pending());
    assert_eq!(bulkhead.available(), 1, "the running call holds a slot");
    drop(running);
    assert_eq!(bulkhead.available(), 2, "and frees it when cancelled");
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_queued_call_gives_back_its_place() {
    let bulkhead = Bulkhead::builder("bh.cancel_queued", 1)
        .queue(1)
        .wait(secs(60))
        .build()
        .unwrap();
    let held = bulkhead.acquire().await.unwrap();
    let mut queued = Box::pin(bulkhead.acquire());
    assert!(futures::poll!(queued.as_mut()).is_pending());
    assert!(bulkhead.acquire().await.unwrap_err().is_bulkhead_full());
    drop(queued);
    // Its place in the queue is free: another caller may queue, and gets the slot.
    let next = tokio::spawn({
        let bulkhead = bulkhead.clone();
        async move { bulkhead.acquire().await.map(drop) }
    });
    tokio::task::yield_now().await;
    drop(held);
    assert_eq!(next.await.unwrap(), Ok(()));
}

#[tokio::test]
async fn the_builder_validates_max_and_shares_by_name() {
    let setting = |b: reliability::BulkheadBuilder| b.build().unwrap_err().setting();
    assert_eq!(setting(Bulkhead::builder("bh.bad", 0)), "max");
    assert_eq!(
        setting(Bulkhead::builder("bh.bad", Bulkhead::MAX + 1)),
        "max"
    );
    assert!(registry().bulkhead("bh.bad").is_none());

    let one = Bulkhead::builder("bh.shared", 3).build().unwrap();
    let again = Bulkhead::builder("bh.shared", 3).build().unwrap();
    assert_eq!(again.config(), one.config(), "one name, one bulkhead");
    let other = Bulkhead::builder("bh.shared", 9).build().unwrap_err();
    assert_eq!(
        other.setting(),
        "name",
        "one name with other settings is a mistake"
    );
    let _slot = one.acquire().await.unwrap();
    assert_eq!(registry().bulkhead("bh.shared").unwrap().available(), 2);
}
