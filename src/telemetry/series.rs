//! Per-call instruments bound to the label sets calls use, kept per serving
//! thread.
//!
//! Recording with attributes makes the SDK hash them and look the series up
//! in a map every thread shares; a call records three such measurements.
//! Here each serving thread keeps the series it has met in a map of its own
//! (one uncontended lock, one fast hash of the label strings), bound once
//! (`experimental_metrics_bound_instruments`), so a measurement is one
//! atomic add or one bucket update.

use std::{fmt, hash::Hash, sync::Mutex};

use hashbrown::{Equivalent, HashMap, hash_map::EntryRef};
use opentelemetry::{
    KeyValue, StringValue,
    metrics::{
        BoundCounter, BoundHistogram, BoundUpDownCounter, Counter, Histogram, UpDownCounter,
    },
};

/// Shards of the cache: serving thread `i` uses shard `i % SHARDS`.
const SHARDS: usize = 16;

/// Series a shard binds at most; past that a call records unbound (the
/// labels are bounded by the schema and the configuration, so this is a
/// backstop, not a limit a deployment meets).
const MAX_SERIES: usize = 4096;

/// The labels of one call's measurements.
#[derive(Clone, Copy, Hash)]
pub struct CallLabels<'a> {
    pub service: &'a str,
    pub method: &'a str,
    pub code: &'a str,
    pub upstream: &'a str,
}

/// [`CallLabels`] owned, as a map key. Hashes as `CallLabels` does (the
/// same strings in the same order).
#[derive(Hash, PartialEq, Eq)]
struct CallKey {
    service: Box<str>,
    method: Box<str>,
    code: Box<str>,
    upstream: Box<str>,
}

impl From<&CallLabels<'_>> for CallKey {
    fn from(labels: &CallLabels<'_>) -> CallKey {
        CallKey {
            service: labels.service.into(),
            method: labels.method.into(),
            code: labels.code.into(),
            upstream: labels.upstream.into(),
        }
    }
}

impl Equivalent<CallKey> for CallLabels<'_> {
    fn equivalent(&self, key: &CallKey) -> bool {
        *key.service == *self.service
            && *key.method == *self.method
            && *key.code == *self.code
            && *key.upstream == *self.upstream
    }
}

struct CallSeries {
    calls: BoundCounter<u64>,
    duration: BoundHistogram<f64>,
}

#[derive(Default)]
struct Shard {
    calls: HashMap<CallKey, CallSeries>,
    upstream: HashMap<Box<str>, BoundHistogram<f64>>,
    in_flight: HashMap<Box<str>, BoundUpDownCounter<i64>>,
}

/// Its own cache line, so two threads' shards do not share one.
#[repr(align(128))]
#[derive(Default)]
struct Padded(Mutex<Shard>);

/// The bound series of `sealgate.calls`, `sealgate.call.duration`,
/// `sealgate.upstream.duration` and `sealgate.calls.in_flight`.
pub(super) struct Series {
    calls: Counter<u64>,
    call_duration: Histogram<f64>,
    upstream_duration: Histogram<f64>,
    in_flight: UpDownCounter<i64>,
    shards: Box<[Padded]>,
}

impl fmt::Debug for Series {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Series").finish_non_exhaustive()
    }
}

impl Series {
    pub(super) fn new(
        calls: Counter<u64>,
        call_duration: Histogram<f64>,
        upstream_duration: Histogram<f64>,
        in_flight: UpDownCounter<i64>,
    ) -> Series {
        Series {
            calls,
            call_duration,
            upstream_duration,
            in_flight,
            shards: (0..SHARDS).map(|_| Padded::default()).collect(),
        }
    }

    fn shard(&self) -> &Mutex<Shard> {
        &self.shards[crate::shard::index() % SHARDS].0
    }

    /// One call answered (or cancelled): counted under all four labels,
    /// its duration under all but the upstream.
    pub(super) fn call(&self, labels: CallLabels<'_>, seconds: f64) {
        let mut shard = self.shard().lock().unwrap_or_else(|e| e.into_inner());
        let attributes = || {
            [
                ("service", labels.service),
                ("method", labels.method),
                ("code", labels.code),
                ("upstream", labels.upstream),
            ]
            .map(|(k, v)| KeyValue::new(k, StringValue::from(v.to_string())))
        };
        let bound = bound(&mut shard.calls, &labels, attributes, |kv| CallSeries {
            calls: self.calls.bind(kv),
            duration: self.call_duration.bind(&kv[..3]),
        });
        match bound {
            Ok(s) => {
                s.calls.add(1);
                s.duration.record(seconds);
            }
            Err(kv) => {
                self.calls.add(1, &kv);
                self.call_duration.record(seconds, &kv[..3]);
            }
        }
    }

    /// The upstream part of a call to `method`.
    pub(super) fn upstream(&self, method: &str, seconds: f64) {
        let mut shard = self.shard().lock().unwrap_or_else(|e| e.into_inner());
        let bound = bound(
            &mut shard.upstream,
            method,
            || one("method", method),
            |kv| self.upstream_duration.bind(kv),
        );
        match bound {
            Ok(h) => h.record(seconds),
            Err(kv) => self.upstream_duration.record(seconds, &kv),
        }
    }

    /// `delta` calls of `service` started (1) or ended (-1). A call's end
    /// may be on another thread than its start (the work-stealing
    /// runtime): each shard's series is a share of the one gauge.
    pub(super) fn in_flight(&self, service: &str, delta: i64) {
        let mut shard = self.shard().lock().unwrap_or_else(|e| e.into_inner());
        let bound = bound(
            &mut shard.in_flight,
            service,
            || one("service", service),
            |kv| self.in_flight.bind(kv),
        );
        match bound {
            Ok(c) => c.add(delta),
            Err(kv) => self.in_flight.add(delta, &kv),
        }
    }
}

/// One attribute, its value copied.
fn one(label: &'static str, value: &str) -> [KeyValue; 1] {
    [KeyValue::new(label, StringValue::from(value.to_string()))]
}

/// The series `map` keeps under `key`, bound by `bind` to the attributes
/// `attributes` builds when it has none yet; when the map is full, those
/// attributes, to record unbound with instead.
fn bound<'m, 'q, K, Q, B, const N: usize>(
    map: &'m mut HashMap<K, B>,
    key: &'q Q,
    attributes: impl FnOnce() -> [KeyValue; N],
    bind: impl FnOnce(&[KeyValue]) -> B,
) -> Result<&'m B, [KeyValue; N]>
where
    K: Eq + Hash + From<&'q Q>,
    Q: Hash + Equivalent<K> + ?Sized,
{
    let full = map.len() >= MAX_SERIES;
    match map.entry_ref(key) {
        EntryRef::Occupied(known) => Ok(known.into_mut()),
        EntryRef::Vacant(new) => {
            let kv = attributes();
            if full {
                return Err(kv);
            }
            Ok(new.insert(bind(&kv)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::CallLabels;
    use crate::telemetry::{Telemetry, TelemetryConfig};

    fn value(text: &str, name: &str, needles: &[&str]) -> f64 {
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .find(|l| needles.iter().all(|n| l.contains(n)))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} {needles:?} in\n{text}"))
    }

    #[test]
    fn series_bound_per_thread_add_up_to_one_series_per_label_set() {
        let t = Telemetry::new(&TelemetryConfig {
            admin_listen: None,
            otlp_endpoint: None,
            trace_sampling: 0.0,
            service_name: "test".into(),
        })
        .unwrap();
        let m = &t.metrics;
        let labels = |code| CallLabels {
            service: "temporal.api.workflowservice.v1.WorkflowService",
            method: "StartWorkflowExecution",
            code,
            upstream: "http://127.0.0.1:7233",
        };
        std::thread::scope(|s| {
            for shard in [0, 1, 17] {
                s.spawn(move || {
                    crate::shard::enter(shard);
                    for _ in 0..3 {
                        m.in_flight("svc", 1);
                        m.call(labels("0"), 0.001);
                        m.upstream_duration("StartWorkflowExecution", 0.0005);
                    }
                    m.call(labels("14"), 0.002);
                    // Ends counted on another thread than their starts.
                    crate::shard::enter(shard + 1);
                    for _ in 0..2 {
                        m.in_flight("svc", -1);
                    }
                });
            }
        });
        let text = t.prometheus_text();
        assert_eq!(value(&text, "sealgate_calls_total", &["code=\"0\""]), 9.0);
        assert_eq!(value(&text, "sealgate_calls_total", &["code=\"14\""]), 3.0);
        let starts = ["method=\"StartWorkflowExecution\"", "code=\"0\""];
        assert_eq!(
            value(&text, "sealgate_call_duration_seconds_count", &starts),
            9.0
        );
        let up = ["method=\"StartWorkflowExecution\""];
        assert_eq!(
            value(&text, "sealgate_upstream_duration_seconds_count", &up),
            9.0
        );
        assert_eq!(
            value(&text, "sealgate_calls_in_flight", &["service=\"svc\""]),
            3.0
        );
        // One series per label set, however many threads bound it.
        let calls = text
            .lines()
            .filter(|l| l.starts_with("sealgate_calls_total{"));
        assert_eq!(calls.count(), 2, "{text}");
    }
}
