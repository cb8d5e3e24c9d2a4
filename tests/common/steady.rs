//! Steady publishing through sidebus while a test breaks and mends the broker: every answer is
//! recorded, so the test can check that what was answered 200 arrived and how the rest failed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::receiver::Received;

/// One publish and how sidebus answered it.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The event's `ce-id`.
    pub id: String,
    /// HTTP status; 0 when the request itself failed.
    pub status: u16,
    /// `Content-Type` of the answer.
    pub content_type: String,
    /// When the answer arrived.
    pub at: Instant,
}

/// Publishers looping until stopped.
pub struct Steady {
    answers: Arc<Mutex<Vec<Answer>>>,
    count: watch::Receiver<usize>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Steady {
    /// Starts `publishers` loops, each POSTing one event with a unique `ce-id` to `url` at most
    /// every `every`, waiting for each answer before the next.
    pub fn start(url: String, publishers: usize, every: Duration) -> Self {
        Self::start_with(url, publishers, every, false)
    }

    /// Like [`Steady::start`]; with `keyed`, publisher `p`'s events carry the partition key
    /// `p<p>`, so per-key order is each publisher's order.
    pub fn start_with(url: String, publishers: usize, every: Duration, keyed: bool) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let answers = Arc::new(Mutex::new(Vec::new()));
        let (count_tx, count) = watch::channel(0usize);
        let count_tx = Arc::new(count_tx);
        let (stop, _) = watch::channel(false);
        let mut tasks = JoinSet::new();
        for p in 0..publishers {
            let (http, url, answers, count_tx) =
                (http.clone(), url.clone(), answers.clone(), count_tx.clone());
            let mut stopped = stop.subscribe();
            tasks.spawn(async move {
                let mut pace = tokio::time::interval(every);
                for i in 0.. {
                    tokio::select! {
                        _ = pace.tick() => {}
                        _ = stopped.wait_for(|s| *s) => return,
                    }
                    let id = format!("p{p}-{i}");
                    let mut request = http.post(&url).header("ce-id", &id).body(id.clone());
                    if keyed {
                        request = request.header("ce-partitionkey", format!("p{p}"));
                    }
                    let (status, content_type) = match request.send().await {
                        Ok(r) => (
                            r.status().as_u16(),
                            r.headers()
                                .get("content-type")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or_default()
                                .to_string(),
                        ),
                        Err(_) => (0, String::new()),
                    };
                    answers.lock().unwrap().push(Answer {
                        id,
                        status,
                        content_type,
                        at: Instant::now(),
                    });
                    count_tx.send_modify(|n| *n += 1);
                }
            });
        }
        Self {
            answers,
            count,
            stop,
            tasks,
        }
    }

    /// Waits until `n` answers after `since` satisfy `which`, failing after `limit` with `what`.
    pub async fn wait_for(
        &mut self,
        what: &str,
        since: Instant,
        n: usize,
        limit: Duration,
        which: impl Fn(&Answer) -> bool,
    ) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let seen = self
                .answers
                .lock()
                .unwrap()
                .iter()
                .filter(|a| a.at >= since && which(a))
                .count();
            if seen >= n {
                return;
            }
            if tokio::time::timeout_at(deadline, self.count.changed())
                .await
                .is_err()
            {
                panic!("{what}: only {seen} of {n} answers within {limit:?}");
            }
        }
    }

    /// Stops publishing and returns every answer.
    pub async fn stop(mut self) -> Vec<Answer> {
        self.stop.send_replace(true);
        while self.tasks.join_next().await.is_some() {}
        self.answers.lock().unwrap().clone()
    }
}

/// What one fault did, for the test's assertions and the README's reliability table.
#[derive(Debug)]
pub struct Outcome {
    /// Publishes sent.
    pub sent: usize,
    /// Answered 200 (acknowledged by the broker).
    pub acknowledged: BTreeSet<String>,
    /// Answers other than 200, by status.
    pub refused: BTreeMap<u16, usize>,
    /// Deliveries beyond the first of an event.
    pub duplicated: usize,
    /// From the broker's return to the first 200.
    pub recovery: Duration,
}

impl Outcome {
    /// Sorts `answers`; every answer that is not 200 must be one of `allowed` statuses with a
    /// problem+json body.
    pub fn of(answers: &[Answer], restored: Instant, allowed: &[u16]) -> Self {
        let mut refused = BTreeMap::new();
        let mut acknowledged = BTreeSet::new();
        for a in answers {
            if a.status == 200 {
                acknowledged.insert(a.id.clone());
                continue;
            }
            assert!(
                allowed.contains(&a.status),
                "{} was answered {} (allowed: 200 or {allowed:?})",
                a.id,
                a.status
            );
            assert_eq!(a.content_type, "application/problem+json", "{a:?}");
            *refused.entry(a.status).or_default() += 1;
        }
        let recovery = answers
            .iter()
            .filter(|a| a.status == 200 && a.at >= restored)
            .map(|a| a.at - restored)
            .min()
            .expect("a publish acknowledged after the broker returned");
        Self {
            sent: answers.len(),
            acknowledged,
            refused,
            duplicated: 0,
            recovery,
        }
    }

    /// Checks that every acknowledged event was delivered and counts the duplicates.
    pub fn delivered(&mut self, received: &[Received]) {
        let mut times: BTreeMap<String, usize> = BTreeMap::new();
        for r in received.iter().filter(|r| r.answered == 200) {
            *times.entry(r.header("ce-id").unwrap()).or_default() += 1;
        }
        let lost: Vec<&String> = self
            .acknowledged
            .iter()
            .filter(|id| !times.contains_key(*id))
            .collect();
        assert!(
            lost.is_empty(),
            "answered 200 but never delivered: {lost:?}"
        );
        self.duplicated = times.values().map(|n| n - 1).sum();
    }

    /// Whether every acknowledged id is among `delivered`.
    pub fn all_in(&self, received: &[Received]) -> bool {
        let ids: BTreeSet<String> = received
            .iter()
            .filter(|r| r.answered == 200)
            .filter_map(|r| r.header("ce-id"))
            .collect();
        self.acknowledged.is_subset(&ids)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "sent {}, acknowledged {}, refused {:?}, lost 0, duplicated {}, recovery {} ms",
            self.sent,
            self.acknowledged.len(),
            self.refused,
            self.duplicated,
            self.recovery.as_millis()
        )
    }
}
