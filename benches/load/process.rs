//! Process measurements: CPU seconds by thread group and of the external broker, and the peak
//! RSS of each phase.

use crate::args::BrokerKind;
use crate::cpu::{own_seconds, pids_named, seconds_of, stat_seconds};

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
            process: own_seconds(),
            broker: seconds_of(broker_pids),
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

/// Resets the process's peak RSS (VmHWM) so each phase reports its own; false if refused.
pub(crate) fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// VmHWM of this process in KiB.
pub(crate) fn peak_rss_kib() -> Option<u64> {
    crate::memory::status_kib("self", "VmHWM:")
}

/// PIDs of the external broker's server processes, whose CPU time each phase reports.
pub(crate) fn broker_pids(kind: BrokerKind) -> Vec<u32> {
    match kind {
        BrokerKind::Nats => pids_named("nats-server"),
        BrokerKind::Amqp => pids_named("beam.smp"),
        BrokerKind::Memory | BrokerKind::Kafka => Vec::new(),
    }
}
