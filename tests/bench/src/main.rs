//! `interlock-bench`: Interlock's benchmark suite. Run through
//! `scripts/bench.sh`, which brings the mesh up, runs the phases below and
//! renders `docs/benchmarks.md`.
//!
//! - `mesh [--quick] --phase NAME --out F`: the scenarios through the edge
//!   of the running local mesh (GetMe sweep and sustained run, Login
//!   against raw bcrypt, Refresh, ListMine, MarkReceived, memory).
//! - `direct [--quick] --out F`: the same GetMe served by the same service
//!   code with no Envoy anywhere (the baseline of the mesh overhead).
//! - `probe --rate R --seconds S`: GetMe through the edge at one rate, for
//!   profiling (`perf record -p <pid>` while it runs).
//! - `faults [--quick] [--only NAME]... --out F`: the fault suite against
//!   the running local mesh ([`faults`]; `scripts/faults.sh` runs it).
//! - `serve-direct`: the child process `direct` starts: users and roles on
//!   plain TCP, the peer check satisfied as the integration tests do.
//!
//! Modules: [`load`] (open- and closed-loop generator), [`report`] (the
//! figures), [`edge`] (the mesh scenarios), [`batch`] (BatchGetUsers),
//! [`fanout`] (push fan-out),
//! [`direct`], [`procs`] (RSS).

mod batch;
mod direct;
mod edge;
mod fanout;
mod faults;
mod load;
mod procs;
mod report;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

/// How long each kind of run lasts: seconds in `--quick` (CI: the bench
/// must not rot, its figures are not judged) and in a full run.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    pub quick: bool,
    /// One point of the GetMe latency-vs-load sweep.
    pub step: Duration,
    /// The sustained GetMe run at the target rate.
    pub sustained: Duration,
    /// Login, Refresh, ListMine, MarkReceived.
    pub scenario: Duration,
    /// Concurrent refresh sessions.
    pub refresh_sessions: usize,
}

impl Plan {
    fn new(quick: bool) -> Self {
        if quick {
            Self {
                quick,
                step: Duration::from_secs(2),
                sustained: Duration::from_secs(3),
                scenario: Duration::from_secs(3),
                refresh_sessions: 8,
            }
        } else {
            Self {
                quick,
                step: Duration::from_secs(10),
                sustained: Duration::from_secs(60),
                scenario: Duration::from_secs(20),
                refresh_sessions: 64,
            }
        }
    }

    /// Offered GetMe rates of the sweep, in calls per second.
    pub fn rates(&self) -> Vec<f64> {
        if self.quick {
            vec![100.0, 300.0, 1000.0]
        } else {
            vec![
                100.0, 300.0, 600.0, 1000.0, 1500.0, 2000.0, 2500.0, 3000.0, 3500.0, 4000.0,
            ]
        }
    }
}

struct Args {
    command: String,
    quick: bool,
    phase: String,
    out: Option<PathBuf>,
    rate: f64,
    seconds: u64,
    only: Vec<String>,
}

fn args() -> anyhow::Result<Args> {
    let mut it = std::env::args().skip(1);
    let command = it.next().unwrap_or_default();
    let mut args = Args {
        command,
        quick: false,
        phase: String::new(),
        out: None,
        rate: 1000.0,
        seconds: 20,
        only: Vec::new(),
    };
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => args.quick = true,
            "--phase" => args.phase = it.next().context("--phase needs a name")?,
            "--out" => args.out = Some(it.next().context("--out needs a file")?.into()),
            "--rate" => args.rate = it.next().context("--rate needs a number")?.parse()?,
            "--seconds" => args.seconds = it.next().context("--seconds needs a number")?.parse()?,
            "--only" => args
                .only
                .push(it.next().context("--only needs a scenario name")?),
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = args()?;
    let plan = Plan::new(args.quick);
    let out = || args.out.clone().context("--out FILE is required");
    match args.command.as_str() {
        "mesh" => edge::run(plan, &args.phase, &out()?).await,
        "direct" => direct::run(plan, &out()?).await,
        "probe" => edge::probe(args.rate, Duration::from_secs(args.seconds)).await,
        "serve-direct" => direct::serve().await,
        "faults" => faults::run(args.quick, &args.only, &out()?).await,
        _ => bail!(
            "usage: interlock-bench mesh|direct [--quick] [--phase NAME] --out FILE\n       interlock-bench probe [--rate R] [--seconds S] | serve-direct\n       interlock-bench faults [--quick] [--only NAME]... --out FILE"
        ),
    }
}
