//! Process measurements: CPU seconds of the phase's server process, of this process by thread
//! group and of the external broker.

use crate::args::BrokerKind;
use crate::cpu::{own_seconds, own_threads_seconds, pids_named, seconds_of};

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
        let [client, rdkafka] = own_threads_seconds(["load-client", "rdk:"]);
        Cpu {
            process: own_seconds(),
            server: server.map_or(0.0, |pid| seconds_of(&[pid])),
            client,
            rdkafka,
            broker: seconds_of(broker_pids),
        }
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

/// PIDs of the external broker's server processes, whose CPU time each phase reports.
pub(crate) fn broker_pids(kind: BrokerKind) -> Vec<u32> {
    match kind {
        BrokerKind::Nats => pids_named("nats-server"),
        BrokerKind::Amqp => pids_named("beam.smp"),
        BrokerKind::Memory | BrokerKind::Kafka => Vec::new(),
    }
}
