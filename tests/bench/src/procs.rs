//! Resident memory of the mesh's processes while a load runs: the services
//! by their binary's name, each Envoy by the workload whose configuration
//! it runs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::task::JoinHandle;

/// Samples every 250 ms until stopped; keeps each process's maximum.
pub struct RssWatch {
    stop: Arc<AtomicBool>,
    task: JoinHandle<BTreeMap<String, u64>>,
}

impl RssWatch {
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut max = BTreeMap::new();
            while !flag.load(Ordering::Relaxed) {
                for (name, kib) in sample() {
                    let m = max.entry(name).or_insert(0);
                    *m = kib.max(*m);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            max
        });
        Self { stop, task }
    }

    /// Each process's highest RSS in KiB, by name.
    pub async fn stop(self) -> Vec<(String, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.expect("rss watch").into_iter().collect()
    }
}

/// (name, RSS KiB) of the mesh's services and Envoys now.
fn sample() -> Vec<(String, u64)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let name = name_of(pid)?;
            Some((name, rss_kib(pid)?))
        })
        .collect()
}

/// `interlock-users`, or `envoy users` for the Envoy of users (`envoy edge`
/// for the edge), from the command line; other processes are not ours.
fn name_of(pid: u32) -> Option<String> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<&str> = cmdline
        .split(|b| *b == 0)
        .filter_map(|a| std::str::from_utf8(a).ok())
        .collect();
    let program = args.first()?.rsplit('/').next()?;
    if program.starts_with("interlock-") && program != "interlock-bench" {
        return Some(program.to_owned());
    }
    if program == "envoy" {
        // `-c <run>/workloads/<name>/envoy.yaml` or `<run>/edge/envoy.yaml`.
        let config = args.iter().skip_while(|a| **a != "-c").nth(1)?;
        let workload = config.rsplit('/').nth(1)?;
        return Some(format!("envoy {workload}"));
    }
    None
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This process is found in /proc and has a resident size.
    #[test]
    fn rss_of_this_process_is_read() {
        let kib = rss_kib(std::process::id()).expect("own RSS");
        assert!(kib > 100, "{kib} KiB");
    }
}
