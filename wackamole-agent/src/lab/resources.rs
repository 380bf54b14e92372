//! Reads a process's memory and CPU counters from `/proc` (the agent's, during
//! a benchmark run). The parsing and arithmetic are pure and live in
//! [`super::analysis`].

use anyhow::{anyhow, Context, Result};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::analysis::{
    parse_schedstat_run_ns, parse_stat_cpu_ticks, parse_vmrss_kib, usage_between, ProcSample,
    ResourceUsage,
};
use super::now_ns;

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), 100 if unknown.
pub fn clock_ticks_per_s() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// The run time of every thread of `pid` (`/proc/PID/task/*/schedstat`),
/// ns; None if any of them cannot be read (the ticks are used then).
fn threads_run_ns(pid: u32) -> Option<u64> {
    let mut sum = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let text = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        sum = sum.checked_add(parse_schedstat_run_ns(&text)?)?;
    }
    Some(sum)
}

/// Reads `/proc/PID/status` (VmRSS), `/proc/PID/stat` (utime + stime) and
/// its threads' run times.
pub fn sample_process(pid: u32) -> Result<ProcSample> {
    let status_path = format!("/proc/{pid}/status");
    let stat_path = format!("/proc/{pid}/stat");
    let status =
        std::fs::read_to_string(&status_path).with_context(|| format!("reading {status_path}"))?;
    let stat =
        std::fs::read_to_string(&stat_path).with_context(|| format!("reading {stat_path}"))?;
    Ok(ProcSample {
        at_ns: now_ns(),
        rss_kib: parse_vmrss_kib(&status)
            .with_context(|| format!("no VmRSS line in {status_path}"))?,
        cpu_ticks: parse_stat_cpu_ticks(&stat)
            .with_context(|| format!("no utime/stime fields in {stat_path}"))?,
        cpu_ns: threads_run_ns(pid),
    })
}

/// Samples `pid` twice, `interval` apart (blocking), and returns its use.
pub fn measure_process(pid: u32, interval: Duration) -> Result<ResourceUsage> {
    let a = sample_process(pid)?;
    std::thread::sleep(interval);
    let b = sample_process(pid)?;
    usage_between(&a, &b, clock_ticks_per_s())
        .ok_or_else(|| anyhow!("process {pid}: counters went backwards"))
}

/// Samples a process in the background every `period` until stopped: CPU over
/// the whole time, peak RSS of all samples.
pub struct ProcessSampler {
    pid: u32,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<ResourceUsage>>>,
}

impl ProcessSampler {
    /// Starts sampling `pid` (fails at once if it cannot be read).
    pub fn start(pid: u32, period: Duration) -> Result<Self> {
        let first = sample_process(pid)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let period = period.max(Duration::from_millis(1));
        let handle = std::thread::Builder::new()
            .name(format!("sampler-{pid}"))
            .spawn(move || -> Result<ResourceUsage> {
                let mut peak = first.rss_kib;
                let mut last = first;
                loop {
                    let stopping = flag.load(Ordering::Relaxed);
                    match sample_process(pid) {
                        Ok(s) => {
                            peak = peak.max(s.rss_kib);
                            last = s;
                        }
                        // The process ended: report up to its last sample.
                        Err(_) => break,
                    }
                    if stopping {
                        break;
                    }
                    std::thread::sleep(period);
                }
                let mut usage =
                    usage_between(&first, &last, clock_ticks_per_s()).unwrap_or(ResourceUsage {
                        rss_kib: 0,
                        cpu_percent: 0.0,
                    });
                usage.rss_kib = peak;
                Ok(usage)
            })
            .context("spawning process sampler")?;
        Ok(ProcessSampler {
            pid,
            stop,
            handle: Some(handle),
        })
    }

    /// Stops sampling and returns the CPU use and peak RSS since [`Self::start`].
    pub fn stop(mut self) -> Result<ResourceUsage> {
        self.stop.store(true, Ordering::Relaxed);
        let handle = self
            .handle
            .take()
            .ok_or_else(|| anyhow!("sampler of {} already stopped", self.pid))?;
        handle
            .join()
            .map_err(|_| anyhow!("sampler of {} panicked", self.pid))?
    }
}

impl Drop for ProcessSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_a_busy_child() -> Result<()> {
        // A child that burns CPU: its CPU share must show, and its RSS be non-zero.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "while :; do :; done"])
            .spawn()?;
        let pid = child.id();
        let sampler = ProcessSampler::start(pid, Duration::from_millis(20))?;
        std::thread::sleep(Duration::from_millis(500));
        let usage = sampler.stop();
        let _ = child.kill();
        let _ = child.wait();
        let usage = usage?;
        assert!(usage.rss_kib > 0);
        assert!(usage.cpu_percent > 0.0, "{usage:?}");
        assert!(clock_ticks_per_s() > 0);
        Ok(())
    }

    #[test]
    fn missing_process_is_an_error() {
        let err = sample_process(u32::MAX).map(|_| ()).unwrap_err();
        assert!(format!("{err:#}").contains("/proc/4294967295/status"));
    }
}
