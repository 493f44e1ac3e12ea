//! Fault switches: make a sandbox service misbehave on purpose.
//!
//! Reliability promises (retry with backoff, nothing lost, nothing phantom)
//! can only be tested against a service that fails. Each switch is a queue of
//! faults per service; every request or operation the service handles takes
//! the next fault, if any, and acts it out. A fault can also be set to fire
//! with a probability, for soak tests.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Which sandbox service a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Service {
    /// The identity provider's token endpoint.
    Identity,
    /// Event Hubs over HTTPS.
    EventHubsHttps,
    /// Event Hubs over AMQP (transfers on sender links).
    EventHubsAmqp,
    /// Event Hubs' `$cbs` node (put-token).
    EventHubsCbs,
    /// The aggregator API.
    Api,
}

/// One misbehaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status (and `Retry-After` seconds, if given)
    /// instead of doing the work. Over AMQP, 503 maps to
    /// `com.microsoft:server-busy` and 500 to `amqp:internal-error`.
    Status {
        /// The status code.
        status: u16,
        /// `Retry-After` in seconds.
        retry_after: Option<u32>,
    },
    /// Wait this long before doing the work.
    Delay(Duration),
    /// Close the connection (HTTP) or detach the link / close the connection
    /// (AMQP) without answering. The work is **not** done.
    Drop,
    /// Refuse a CBS put-token (`amqp:unauthorized-access`).
    RefuseToken,
}

#[derive(Default)]
struct Queue {
    queued: VecDeque<Fault>,
    random: Option<(Fault, f64)>,
}

/// The fault switches of one sandbox. Shared by all its services.
#[derive(Default)]
pub struct Faults {
    queues: Mutex<std::collections::HashMap<Service, Queue>>,
    fired: AtomicU64,
    rng: AtomicU64,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults")
            .field("fired", &self.fired())
            .finish_non_exhaustive()
    }
}

impl Faults {
    /// Queues `fault` for the next `times` operations of `service`.
    pub fn inject(&self, service: Service, fault: Fault, times: usize) {
        let mut q = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let queue = q.entry(service).or_default();
        queue.queued.extend(std::iter::repeat_n(fault, times));
    }

    /// Makes `fault` fire on each operation of `service` with probability
    /// `p` (0 to 1), until [`Faults::clear`]. Uses a fixed-seed generator so
    /// runs repeat.
    pub fn inject_randomly(&self, service: Service, fault: Fault, p: f64) {
        let mut q = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        q.entry(service).or_default().random = Some((fault, p.clamp(0.0, 1.0)));
    }

    /// Removes every queued and random fault.
    pub fn clear(&self) {
        self.queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// How many faults have fired so far.
    pub fn fired(&self) -> u64 {
        self.fired.load(Ordering::Relaxed)
    }

    /// Takes the fault for the next operation of `service`, if any. Services
    /// call this once per request, transfer or put-token.
    pub fn next(&self, service: Service) -> Option<Fault> {
        let mut q = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        let queue = q.get_mut(&service)?;
        let fault = match queue.queued.pop_front() {
            Some(f) => Some(f),
            None => match &queue.random {
                Some((f, p)) if self.roll() < *p => Some(f.clone()),
                _ => None,
            },
        };
        if fault.is_some() {
            self.fired.fetch_add(1, Ordering::Relaxed);
        }
        fault
    }

    /// xorshift64*, seeded by the first call; good enough to spread faults.
    fn roll(&self) -> f64 {
        let mut x = self.rng.load(Ordering::Relaxed);
        if x == 0 {
            x = 0x9E37_79B9_7F4A_7C15;
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.store(x, Ordering::Relaxed);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The HTTP form of [`Fault::Drop`]: a response whose body fails after the
/// headers, so the client sees the connection drop mid-answer. Services
/// return it *instead of* doing the work, so nothing was done.
pub(crate) fn hang_up() -> axum::response::Response {
    let stream = futures_util::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::other(
            "sandbox fault: connection dropped",
        ))
    });
    axum::response::Response::new(axum::body::Body::from_stream(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queued_faults_fire_in_order_then_stop() {
        let f = Faults::default();
        f.inject(Service::Identity, Fault::Drop, 2);
        assert_eq!(f.next(Service::Identity), Some(Fault::Drop));
        assert_eq!(f.next(Service::Api), None);
        assert_eq!(f.next(Service::Identity), Some(Fault::Drop));
        assert_eq!(f.next(Service::Identity), None);
        assert_eq!(f.fired(), 2);
    }

    #[test]
    fn random_faults_fire_about_as_often_as_asked() {
        let f = Faults::default();
        f.inject_randomly(Service::Api, Fault::Drop, 0.25);
        let n = (0..4000).filter(|_| f.next(Service::Api).is_some()).count();
        assert!((800..1200).contains(&n), "{n}");
        f.clear();
        assert_eq!(f.next(Service::Api), None);
    }
}
