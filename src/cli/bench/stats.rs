//! What `bench` measures and reports: figures (samples of one quantity),
//! their summaries, and comparisons of two figures from the same run.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use krunbox::vm::nearest_rank;

/// A name or label: static when measured, owned when read back from JSON.
pub type Text = Cow<'static, str>;

/// One measured quantity and its samples, in milliseconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figure {
    /// Stable name, e.g. `boot.agent_ready`.
    pub id: Text,
    /// What it is, for people.
    pub label: Text,
    /// Bytes moved per sample, for throughput figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Every sample after warm-up, in milliseconds, in the order taken.
    pub samples_ms: Vec<f64>,
}

impl Figure {
    /// An empty figure.
    pub fn new(id: &'static str, label: &'static str) -> Self {
        Self {
            id: Cow::Borrowed(id),
            label: Cow::Borrowed(label),
            bytes: None,
            samples_ms: Vec::new(),
        }
    }

    /// An empty figure of a transfer of `bytes` per sample.
    pub fn transfer(id: &'static str, label: &'static str, bytes: u64) -> Self {
        Self {
            bytes: Some(bytes),
            ..Self::new(id, label)
        }
    }

    /// min / p50 / p90 / max of the samples; `None` without samples.
    pub fn summary(&self) -> Option<Summary> {
        Summary::of(&self.samples_ms)
    }

    /// Throughput at the median, in MiB/s, for transfer figures.
    pub fn mib_per_s(&self) -> Option<f64> {
        let p50 = self.summary()?.p50;
        let bytes = self.bytes? as f64;
        (p50 > 0.0).then(|| bytes / (1024.0 * 1024.0) / (p50 / 1e3))
    }
}

/// Order statistics of a figure's samples (nearest rank).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Number of samples.
    pub n: usize,
    /// Smallest.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 95th percentile (0 in reports saved before it was kept).
    #[serde(default)]
    pub p95: f64,
    /// 99th percentile (0 in reports saved before it was kept).
    #[serde(default)]
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Summary {
    /// The summary of `samples`; `None` when there are none.
    pub fn of(samples: &[f64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank = |q| nearest_rank(&sorted, q).unwrap_or_default();
        Some(Self {
            n: sorted.len(),
            min: sorted[0],
            p50: rank(0.5),
            p90: rank(0.9),
            p95: rank(0.95),
            p99: rank(0.99),
            max: sorted[sorted.len() - 1],
        })
    }
}

/// A design target for a comparison's ratio (krunbox p50 / baseline p50).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    /// The ratio must be at most this.
    pub max_ratio: f64,
    /// The target as docs/bench.md states it.
    pub text: Text,
}

/// How krunbox fares against a baseline: two figures of the same run.
#[derive(Debug, Clone)]
pub struct ComparisonSpec {
    /// Stable name.
    pub id: &'static str,
    /// What is compared, for people.
    pub label: &'static str,
    /// The krunbox figure's id.
    pub krunbox: &'static str,
    /// The baseline figure's id.
    pub baseline: &'static str,
    /// The target (docs/bench.md), when there is one.
    pub target: Option<Target>,
}

/// A comparison with its measured ratio.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comparison {
    /// Stable name.
    pub id: Text,
    /// What is compared.
    pub label: Text,
    /// The krunbox figure's id.
    pub krunbox: Text,
    /// The baseline figure's id.
    pub baseline: Text,
    /// krunbox p50 in ms.
    pub krunbox_p50_ms: f64,
    /// Baseline p50 in ms.
    pub baseline_p50_ms: f64,
    /// krunbox p50 / baseline p50: below 1, krunbox is faster.
    pub ratio: f64,
    /// The ratio across the spread: krunbox's min over the baseline's
    /// p90, and krunbox's p90 over the baseline's min (absent in reports
    /// saved before it was kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio_spread: Option<[f64; 2]>,
    /// The design target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<Target>,
    /// Whether the target is met, where the spread allows a verdict:
    /// `None` without a target, or when the target lies within the spread.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub met: Option<bool>,
    /// The verdict on the target, the spread considered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
}

/// What a run says of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Met across the spread: even krunbox's p90 over the baseline's min.
    Met,
    /// Missed across the spread: even krunbox's min over the baseline's p90.
    NotMet,
    /// The target lies within the spread: this run cannot tell.
    WithinNoise,
}

impl Verdict {
    /// The verdict on `max_ratio`, given the ratio's spread (or, without
    /// one, the ratio of medians).
    pub fn of(max_ratio: f64, ratio: f64, spread: Option<[f64; 2]>) -> Self {
        let [best, worst] = spread.unwrap_or([ratio, ratio]);
        if worst <= max_ratio {
            Self::Met
        } else if best > max_ratio {
            Self::NotMet
        } else {
            Self::WithinNoise
        }
    }

    /// How the table says it.
    pub fn says(self) -> &'static str {
        match self {
            Self::Met => "met",
            Self::NotMet => "NOT met",
            Self::WithinNoise => "within the noise: more runs may tell",
        }
    }
}

impl Comparison {
    /// The verdict on the target; for reports saved before verdicts were
    /// kept, from `met`.
    pub fn verdict(&self) -> Option<Verdict> {
        self.verdict.or_else(|| {
            self.met
                .map(|met| if met { Verdict::Met } else { Verdict::NotMet })
        })
    }
}

impl ComparisonSpec {
    /// The comparison, if both figures were measured.
    pub fn evaluate(&self, figures: &[Figure]) -> Option<Comparison> {
        let summary = |id: &str| figures.iter().find(|f| f.id == id)?.summary();
        let (k, b) = (summary(self.krunbox)?, summary(self.baseline)?);
        let over = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::INFINITY };
        let (krunbox, baseline) = (k.p50, b.p50);
        let ratio = over(krunbox, baseline);
        let ratio_spread = Some([over(k.min, b.p90), over(k.p90, b.min)]);
        let verdict = self
            .target
            .as_ref()
            .map(|t| Verdict::of(t.max_ratio, ratio, ratio_spread));
        Some(Comparison {
            id: Cow::Borrowed(self.id),
            label: Cow::Borrowed(self.label),
            krunbox: Cow::Borrowed(self.krunbox),
            baseline: Cow::Borrowed(self.baseline),
            krunbox_p50_ms: krunbox,
            baseline_p50_ms: baseline,
            ratio,
            ratio_spread,
            met: verdict.and_then(|v| match v {
                Verdict::Met => Some(true),
                Verdict::NotMet => Some(false),
                Verdict::WithinNoise => None,
            }),
            verdict,
            target: self.target.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s = Summary::of(&[5.0, 1.0, 4.0, 2.0, 3.0]).unwrap();
        assert_eq!((s.n, s.min, s.p50, s.p90, s.max), (5, 1.0, 3.0, 5.0, 5.0));
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        let s = Summary::of(&ten).unwrap();
        assert_eq!((s.p50, s.p90), (5.0, 9.0));
        let one = Summary::of(&[7.0]).unwrap();
        assert_eq!((one.min, one.p50, one.p90, one.max), (7.0, 7.0, 7.0, 7.0));
        assert!(Summary::of(&[]).is_none());
    }

    #[test]
    fn comparison_ratio_and_target() {
        let mut a = Figure::new("a", "a");
        a.samples_ms = vec![2.0, 2.0, 2.0];
        let mut b = Figure::new("b", "b");
        b.samples_ms = vec![1.0, 1.0, 1.0];
        let spec = ComparisonSpec {
            id: "a_vs_b",
            label: "a against b",
            krunbox: "a",
            baseline: "b",
            target: Some(Target {
                max_ratio: 1.5,
                text: Cow::Borrowed("a <= 1.5x b"),
            }),
        };
        let c = spec.evaluate(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(c.ratio, 2.0);
        assert_eq!(c.met, Some(false));
        assert_eq!(c.verdict, Some(Verdict::NotMet));
        assert!(spec.evaluate(&[a.clone()]).is_none(), "a missing baseline");

        // Medians that meet the target, with a spread that crosses it.
        a.samples_ms = vec![0.5, 1.2, 1.2, 1.2, 3.0];
        b.samples_ms = vec![1.0, 1.0, 1.0, 1.0, 1.0];
        let c = spec.evaluate(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(c.ratio, 1.2);
        assert_eq!(c.ratio_spread, Some([0.5, 3.0]));
        assert_eq!((c.verdict, c.met), (Some(Verdict::WithinNoise), None));
        // A spread below the target.
        a.samples_ms = vec![1.1, 1.2, 1.4];
        let c = spec.evaluate(&[a, b]).unwrap();
        assert_eq!((c.verdict, c.met), (Some(Verdict::Met), Some(true)));
    }

    #[test]
    fn throughput_at_the_median() {
        let mut f = Figure::transfer("copy", "copy", 64 << 20);
        f.samples_ms = vec![500.0, 1000.0, 2000.0];
        assert_eq!(f.mib_per_s(), Some(64.0));
    }
}
