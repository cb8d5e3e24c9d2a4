//! Process measurements: CPU seconds of the phase's server process, of this process by thread
//! group and of the external broker, and the server's peak RSS in each phase.

use crate::args::BrokerKind;
use crate::cpu::{own_seconds, pids_named, seconds_of, stat_seconds};

/// CPU seconds at one moment.
#[derive(Clone, Copy, Default)]
pub(crate) struct Cpu {
    /// This process: the load client, the native publishers, librdkafka's threads of the
    /// native producer and of the mock cluster.
    pub(crate) process: f64,
    /// The phase's server process, every thread of it: sidebus (its broker client included) or
    /// the bare handler.
    pub(crate) server: f64,
    /// The load client's runtime threads (`load-client*`), native publishers included.
    pub(crate) client: f64,
    /// This process's librdkafka threads (`rdk:*`): the native producer and the mock cluster.
    pub(crate) rdkafka: f64,
    /// The external broker's processes (nats-server, RabbitMQ's beam.smp).
    pub(crate) broker: f64,
}

impl Cpu {
    pub(crate) fn now(broker_pids: &[u32], server: Option<u32>) -> Self {
        let mut cpu = Cpu {
            process: own_seconds(),
            server: server.map_or(0.0, |pid| seconds_of(&[pid])),
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
                if comm.starts_with("load-client") {
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

    /// All the CPU of the phase: this process, the server's and the broker's.
    pub(crate) fn total(&self) -> f64 {
        self.process + self.server + self.broker
    }
}

/// Resets process `pid`'s peak RSS (VmHWM) so each phase reports its own; false if refused.
pub(crate) fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// VmHWM of process `pid` in KiB.
pub(crate) fn peak_rss_kib(pid: u32) -> Option<u64> {
    crate::memory::status_kib(&pid.to_string(), "VmHWM:")
}

/// PIDs of the external broker's server processes, whose CPU time each phase reports.
pub(crate) fn broker_pids(kind: BrokerKind) -> Vec<u32> {
    match kind {
        BrokerKind::Nats => pids_named("nats-server"),
        BrokerKind::Amqp => pids_named("beam.smp"),
        BrokerKind::Memory | BrokerKind::Kafka => Vec::new(),
    }
}
