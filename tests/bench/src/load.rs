//! The load generator: calls offered open-loop (a constant arrival rate,
//! whatever the answers do) or closed-loop (a fixed number of callers, each
//! waiting for its answer), and what came back.
//!
//! Open-loop latency is measured from when a call was *due*, not from when
//! it was sent: if the generator itself falls behind, that delay counts
//! (no coordinated omission), so queueing shows in the percentiles.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Calls outstanding at once before the generator counts a call as
/// dropped instead of sending it: a bound on what a collapsing target can
/// cost the machine, far above any healthy run's concurrency.
const MAX_IN_FLIGHT: usize = 4096;

/// What one run of a scenario at one rate saw.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Calls per second offered (open-loop) or 0 (closed-loop).
    pub offered_rps: f64,
    /// Successful calls per second: over the offered window (open-loop),
    /// over the run (closed-loop).
    pub achieved_rps: f64,
    pub calls: u64,
    pub ok: u64,
    /// Failures by gRPC code (or `dropped` when the generator had
    /// `MAX_IN_FLIGHT` calls outstanding).
    pub errors: BTreeMap<String, u64>,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub seconds: f64,
}

impl Outcome {
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The run kept up with its offered rate: every call answered OK, at
    /// least 98% of the offered rate achieved, p99 under `p99_ms`.
    pub fn sustained(&self, p99_ms: f64) -> bool {
        self.error_count() == 0
            && self.achieved_rps >= 0.98 * self.offered_rps
            && self.p99_ms < p99_ms
    }

    pub fn line(&self, label: &str) -> String {
        format!(
            "{label}: offered {:.0}/s achieved {:.0}/s ok {} errors {:?} p50 {:.2} ms p90 {:.2} ms p99 {:.2} ms max {:.1} ms",
            self.offered_rps,
            self.achieved_rps,
            self.ok,
            self.errors,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.max_ms
        )
    }
}

/// Latencies and failures, shared by the calls of one run.
#[derive(Default)]
struct Record {
    micros: Vec<u64>,
    errors: BTreeMap<String, u64>,
}

impl Record {
    fn add(&mut self, result: Result<(), tonic::Code>, latency: Duration) {
        match result {
            Ok(()) => self.micros.push(latency.as_micros() as u64),
            Err(code) => *self.errors.entry(format!("{code:?}")).or_default() += 1,
        }
    }

    fn outcome(mut self, offered_rps: f64, elapsed: Duration) -> Outcome {
        self.micros.sort_unstable();
        let at = |q: f64| -> f64 {
            if self.micros.is_empty() {
                return f64::NAN;
            }
            let i = ((self.micros.len() as f64 - 1.0) * q).round() as usize;
            self.micros[i] as f64 / 1000.0
        };
        let ok = self.micros.len() as u64;
        let seconds = elapsed.as_secs_f64();
        Outcome {
            offered_rps,
            achieved_rps: ok as f64 / seconds,
            calls: ok + self.errors.values().sum::<u64>(),
            ok,
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            max_ms: at(1.0),
            errors: self.errors,
            seconds,
        }
    }
}

/// Offers `rate` calls per second for `duration`; call `i` is `call(i)`.
pub async fn open_loop<F, Fut>(rate: f64, duration: Duration, call: F) -> Outcome
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<(), tonic::Code>> + Send + 'static,
{
    let record = Arc::new(Mutex::new(Record::default()));
    let room = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let total = (rate * duration.as_secs_f64()).round() as u64;
    let start = Instant::now();
    let mut calls = JoinSet::new();
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let Ok(permit) = room.clone().try_acquire_owned() else {
            *record
                .lock()
                .expect("record")
                .errors
                .entry("dropped".into())
                .or_default() += 1;
            continue;
        };
        let fut = call(i);
        let record = record.clone();
        calls.spawn(async move {
            let result = fut.await;
            record.lock().expect("record").add(result, due.elapsed());
            drop(permit);
        });
        // Reap finished calls as we go so the set stays small.
        while calls.try_join_next().is_some() {}
    }
    while calls.join_next().await.is_some() {}
    // Throughput over the offered window (the last answers arrive just
    // after it): every call answered OK is exactly the offered rate.
    let mut out = finish(record, rate, start.elapsed());
    out.achieved_rps = out.ok as f64 / duration.as_secs_f64();
    out
}

/// `callers` loops, each making its next call when the last one answered,
/// for `duration`; caller `c`'s `n`th call is `call(c, n)`.
pub async fn closed_loop<F, Fut>(callers: usize, duration: Duration, call: F) -> Outcome
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), tonic::Code>> + Send + 'static,
{
    let record = Arc::new(Mutex::new(Record::default()));
    let call = Arc::new(call);
    let start = Instant::now();
    let end = start + duration;
    let mut loops = JoinSet::new();
    for c in 0..callers {
        let (record, call) = (record.clone(), call.clone());
        loops.spawn(async move {
            let mut n = 0;
            while Instant::now() < end {
                let sent = Instant::now();
                let result = call(c, n).await;
                record.lock().expect("record").add(result, sent.elapsed());
                n += 1;
            }
        });
    }
    while loops.join_next().await.is_some() {}
    let elapsed = start.elapsed();
    finish(record, 0.0, elapsed)
}

fn finish(record: Arc<Mutex<Record>>, rate: f64, elapsed: Duration) -> Outcome {
    let record = Arc::try_unwrap(record)
        .ok()
        .expect("every call has finished")
        .into_inner()
        .expect("record");
    record.outcome(rate, elapsed)
}

/// The gRPC outcome of a call, without its payload.
pub fn code<T>(result: Result<T, tonic::Status>) -> Result<(), tonic::Code> {
    result.map(|_| ()).map_err(|s| s.code())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An open-loop run offers its rate whatever the answers, and counts
    /// each failure under its code.
    #[tokio::test]
    async fn open_loop_offers_the_rate_and_counts_failures_by_code() {
        let out = open_loop(200.0, Duration::from_millis(500), |i| async move {
            if i % 10 == 0 {
                Err(tonic::Code::Unavailable)
            } else {
                Ok(())
            }
        })
        .await;
        assert_eq!(out.calls, 100);
        assert_eq!(out.errors.get("Unavailable"), Some(&10));
        assert_eq!(out.ok, 90);
    }

    /// Latency counts from when a call was due: a target that answers
    /// after 20 ms shows at least 20 ms at every percentile.
    #[tokio::test]
    async fn open_loop_latency_includes_the_wait() {
        let out = open_loop(100.0, Duration::from_millis(300), |_| async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(())
        })
        .await;
        assert!(out.p50_ms >= 20.0, "{out:?}");
        assert_eq!((out.ok, out.error_count()), (30, 0), "{out:?}");
    }

    /// Closed-loop callers each wait for their answer: two callers of a
    /// 10 ms target make about 200 calls a second, never 2000.
    #[tokio::test]
    async fn closed_loop_is_bounded_by_the_callers() {
        let out = closed_loop(2, Duration::from_millis(500), |_, _| async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            Ok(())
        })
        .await;
        assert!(out.achieved_rps < 250.0, "{out:?}");
        assert!(out.ok >= 10, "{out:?}");
    }
}
