//! Waiting for something to become true. Tests never sleep a fixed time and
//! then assert: they poll for the positive signal they need, and fail with
//! the last thing they saw once the deadline has passed.

use std::fmt::Debug;
use std::future::Future;
use std::time::{Duration, Instant};

/// How long to wait for a signal, and how often to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patience {
    within: Duration,
    every: Duration,
}

impl Patience {
    /// Looking every 50 ms: cheap checks (an in-process call, a counter).
    pub const DEFAULT_EVERY: Duration = Duration::from_millis(50);

    /// Wait up to `within`, looking every [`Self::DEFAULT_EVERY`].
    pub const fn up_to(within: Duration) -> Self {
        Self {
            within,
            every: Self::DEFAULT_EVERY,
        }
    }

    /// Up to `secs` seconds.
    pub const fn secs(secs: u64) -> Self {
        Self::up_to(Duration::from_secs(secs))
    }

    /// Look every `every` instead (for checks that cost something: a
    /// process to spawn, a query API to ask).
    pub const fn every(self, every: Duration) -> Self {
        Self { every, ..self }
    }
}

/// Calls `attempt` until it returns `Ok`, and returns that value. An `Err`
/// is the state seen so far ("not yet"); once `patience` runs out, the test
/// fails with `what` and the last one. An attempt that itself outlasts the
/// deadline is cut off, so a hung call cannot hang the test.
pub async fn wait_until<T, E, F, Fut>(what: &str, patience: Patience, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: Debug,
{
    let started = Instant::now();
    let deadline = started + patience.within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let last = match tokio::time::timeout(left, attempt()).await {
            Ok(Ok(value)) => return value,
            Ok(Err(not_yet)) => format!("{not_yet:?}"),
            Err(_) => "the last attempt did not finish".to_owned(),
        };
        if Instant::now() >= deadline {
            panic!(
                "{what}: not within {:?} (looked for {:?}); last: {last}",
                patience.within,
                started.elapsed()
            );
        }
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(patience.every.min(left)).await;
    }
}

/// Calls `call` until it fails with `code` (e.g. a token refused once its
/// session's revocation has spread), and returns that status; the other
/// answers are the "not yet".
pub async fn wait_for_refusal<T, F, Fut>(
    what: &str,
    patience: Patience,
    code: tonic::Code,
    mut call: F,
) -> tonic::Status
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, tonic::Status>>,
    T: Debug,
{
    wait_until(what, patience, || {
        let answer = call();
        async move {
            match answer.await {
                Err(status) if status.code() == code => Ok(status),
                other => Err(other),
            }
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// The value of the first successful attempt is returned.
    #[tokio::test]
    async fn returns_once_the_signal_appears() {
        let tries = AtomicU32::new(0);
        let got = wait_until("third try", Patience::secs(5).every(Duration::ZERO), || {
            let n = tries.fetch_add(1, Ordering::SeqCst) + 1;
            async move { if n == 3 { Ok(n) } else { Err(n) } }
        })
        .await;
        assert_eq!(got, 3);
    }

    /// Past the deadline the test fails, naming what it waited for and the
    /// last state it saw.
    #[tokio::test]
    #[should_panic(expected = "never: not within 100ms")]
    async fn fails_with_the_last_state_after_the_deadline() {
        wait_until(
            "never",
            Patience::up_to(Duration::from_millis(100)).every(Duration::from_millis(10)),
            || async { Err::<(), _>("still false") },
        )
        .await;
    }

    /// Answers other than the awaited refusal are waited out.
    #[tokio::test]
    async fn waits_for_the_refusal_with_the_given_code() {
        let tries = AtomicU32::new(0);
        let refused = wait_for_refusal(
            "refused",
            Patience::secs(5).every(Duration::ZERO),
            tonic::Code::Unauthenticated,
            || {
                let n = tries.fetch_add(1, Ordering::SeqCst);
                async move {
                    match n {
                        0 => Ok(()),
                        1 => Err(tonic::Status::unavailable("starting")),
                        _ => Err(tonic::Status::unauthenticated("session revoked")),
                    }
                }
            },
        )
        .await;
        assert_eq!(refused.message(), "session revoked");
        assert_eq!(tries.load(Ordering::SeqCst), 3);
    }

    /// An attempt that hangs is cut off at the deadline.
    #[tokio::test]
    #[should_panic(expected = "the last attempt did not finish")]
    async fn a_hung_attempt_is_cut_off_at_the_deadline() {
        wait_until("hung", Patience::up_to(Duration::from_millis(50)), || {
            std::future::pending::<Result<(), ()>>()
        })
        .await;
    }
}
