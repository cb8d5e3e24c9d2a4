//! Process measurements: CPU seconds by thread group and of the external broker, and the peak
//! RSS of each phase.

use crate::args::BrokerKind;

/// CPU seconds at one moment.
#[derive(Clone, Copy, Default)]
pub(crate) struct Cpu {
    /// The whole process (client, server, librdkafka, mock cluster, …).
    pub(crate) process: f64,
    /// sidebus's runtime threads (`sb-server*`): HTTP, parsing, pipeline, NATS and AMQP clients.
    pub(crate) server: f64,
    /// The load client's runtime threads (`load-client*`), native publishers included.
    pub(crate) client: f64,
    /// librdkafka's threads (`rdk:*`): sidebus's and the native producer, and the mock cluster.
    pub(crate) rdkafka: f64,
    /// The external broker's processes (nats-server, RabbitMQ's beam.smp).
    pub(crate) broker: f64,
}

impl Cpu {
    pub(crate) fn now(broker_pids: &[u32]) -> Self {
        let mut cpu = Cpu {
            process: stat_seconds("/proc/self/stat").unwrap_or(0.0),
            broker: broker_pids
                .iter()
                .filter_map(|pid| stat_seconds(&format!("/proc/{pid}/stat")))
                .sum(),
            ..Cpu::default()
        };
        if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
            for task in tasks.filter_map(Result::ok) {
                let dir = task.path();
                let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
                let Some(seconds) = stat_seconds(&dir.join("stat").to_string_lossy()) else {
                    continue;
                };
                if comm.starts_with("sb-server") {
                    cpu.server += seconds;
                } else if comm.starts_with("load-client") {
                    cpu.client += seconds;
                } else if comm.starts_with("rdk:") {
                    cpu.rdkafka += seconds;
                }
            }
        }
        cpu
    }

    pub(crate) fn since(self, before: Cpu) -> Cpu {
        Cpu {
            process: self.process - before.process,
            server: self.server - before.server,
            client: self.client - before.client,
            rdkafka: self.rdkafka - before.rdkafka,
            broker: self.broker - before.broker,
        }
    }
}

/// utime + stime of a `/proc/…/stat` file, in seconds (USER_HZ is 100 on Linux).
fn stat_seconds(path: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(path).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Resets the process's peak RSS (VmHWM) so each phase reports its own; false if refused.
pub(crate) fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// VmHWM of this process in KiB.
pub(crate) fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// PIDs of the external broker's server processes, whose CPU time each phase reports.
pub(crate) fn broker_pids(kind: BrokerKind) -> Vec<u32> {
    let comm = match kind {
        BrokerKind::Nats => "nats-server",
        BrokerKind::Amqp => "beam.smp",
        BrokerKind::Memory | BrokerKind::Kafka => return Vec::new(),
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == comm)
        })
        .collect()
}
