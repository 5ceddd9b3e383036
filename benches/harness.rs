//! A small benchmark harness: interleaved samples, medians, ratios and one
//! markdown table. No criterion: the numbers this crate cares about are
//! ratios between implementations measured side by side in one run, so the
//! harness measures the variants of one comparison in turns (round-robin,
//! rotating who goes first), and a ratio is the median of the per-round
//! ratios: each compares samples taken seconds apart under the same load,
//! which keeps a busy machine's drift out of the ratios.

use std::time::{Duration, Instant};

/// One implementation in a comparison.
pub struct Variant<'a> {
    pub name: &'static str,
    /// Operations in one sample (spawns, round trips, bytes).
    pub ops: u64,
    /// Runs one sample and returns the time its `ops` operations took
    /// (setup such as spawning a `cat` can be left outside the clock).
    pub sample: Box<dyn FnMut() -> Duration + 'a>,
    /// What this variant must achieve against the comparison's reference.
    pub target: Option<Target>,
    /// The variant this one is compared with, when not the reference.
    pub against: Option<usize>,
}

impl<'a> Variant<'a> {
    pub fn new(name: &'static str, ops: u64, sample: impl FnMut() -> Duration + 'a) -> Self {
        Variant {
            name,
            ops,
            sample: Box::new(sample),
            target: None,
            against: None,
        }
    }

    /// Compares the variant with variant `i` of the comparison instead of
    /// the reference.
    pub fn against(mut self, i: usize) -> Self {
        self.against = Some(i);
        self
    }

    /// Gives the variant a target against the reference.
    pub fn target(mut self, target: Target) -> Self {
        self.target = Some(target);
        self
    }
}

/// Seconds per operation of every sample of one variant, in round order.
#[derive(Clone, Debug)]
pub struct Samples {
    pub name: &'static str,
    pub target: Option<Target>,
    pub against: Option<usize>,
    per_op: Vec<f64>,
}

/// The `q` quantile of `values` (interpolated).
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let pos = q * (v.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    v[lo] + (v[hi] - v[lo]) * (pos - lo as f64)
}

impl Samples {
    /// Median seconds per operation.
    pub fn median(&self) -> f64 {
        quantile(&self.per_op, 0.5)
    }

    /// Half the interquartile range, relative to the median.
    pub fn spread(&self) -> f64 {
        (quantile(&self.per_op, 0.75) - quantile(&self.per_op, 0.25)) / 2.0 / self.median()
    }

    /// The median over rounds of this variant's time per operation divided
    /// by `reference`'s in the same round.
    pub fn paired_ratio(&self, reference: &Samples) -> f64 {
        let ratios: Vec<f64> = self
            .per_op
            .iter()
            .zip(&reference.per_op)
            .map(|(mine, theirs)| mine / theirs)
            .collect();
        quantile(&ratios, 0.5)
    }
}

/// Runs `warmup` unmeasured samples of each variant, then `rounds` rounds in
/// which every variant runs one sample.
pub fn compare(warmup: usize, rounds: usize, variants: &mut [Variant<'_>]) -> Vec<Samples> {
    for v in variants.iter_mut() {
        for _ in 0..warmup {
            (v.sample)();
        }
    }
    let mut per_op: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); variants.len()];
    for round in 0..rounds {
        for k in 0..variants.len() {
            let i = (round + k) % variants.len();
            let v = &mut variants[i];
            let t = (v.sample)();
            per_op[i].push(t.as_secs_f64() / v.ops as f64);
        }
    }
    variants
        .iter()
        .zip(per_op)
        .map(|(v, s)| Samples {
            name: v.name,
            target: v.target,
            against: v.against,
            per_op: s,
        })
        .collect()
}

/// Times `f`.
pub fn timed(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

/// How a row's number reads.
#[derive(Clone, Copy, Debug)]
pub enum Unit {
    /// Time per operation; lower is better; shown in µs or ms.
    Time,
    /// Operations are bytes; shown as MB/s (10^6 bytes); higher is better.
    Rate,
    /// Operations per second (requests, messages); higher is better.
    PerSecond,
}

/// What a row must achieve against its reference.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// The row's time is at most this multiple of the reference's.
    AtMost(f64),
    /// The row's rate is at least this multiple of the reference's.
    AtLeast(f64),
}

/// One line of the table.
pub struct Row {
    pub case: String,
    pub variant: String,
    pub unit: Unit,
    pub median: f64,
    pub spread: f64,
    /// The reference's name, `None` for the reference itself.
    pub reference: Option<&'static str>,
    /// Median per-round ratio of this row's time per operation to the
    /// reference's (1 for the reference).
    pub time_ratio: f64,
    pub target: Option<Target>,
}

impl Row {
    /// The row against the reference in the row's own unit: a time ratio
    /// for times, a rate ratio for rates.
    pub fn ratio(&self) -> f64 {
        match self.unit {
            Unit::Time => self.time_ratio,
            Unit::Rate | Unit::PerSecond => 1.0 / self.time_ratio,
        }
    }

    pub fn met(&self) -> Option<bool> {
        let ratio = self.ratio();
        self.target.map(|t| match t {
            Target::AtMost(x) => ratio <= x,
            Target::AtLeast(x) => ratio >= x,
        })
    }

    fn value(&self) -> String {
        match self.unit {
            Unit::Time if self.median >= 1e-3 => format!("{:.2} ms", self.median * 1e3),
            Unit::Time => format!("{:.1} µs", self.median * 1e6),
            Unit::Rate => format!("{:.0} MB/s", 1.0 / self.median / 1e6),
            Unit::PerSecond => format!("{:.0}/s", 1.0 / self.median),
        }
    }
}

/// Rows for one comparison: `samples[reference]` is the reference (a
/// variant made with `against` is compared with that variant instead).
pub fn rows(case: &str, unit: Unit, samples: &[Samples], reference: usize) -> Vec<Row> {
    samples
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let vs = s.against.unwrap_or(reference);
            let r = &samples[vs];
            Row {
                case: case.to_string(),
                variant: s.name.to_string(),
                unit,
                median: s.median(),
                spread: s.spread(),
                reference: (i != vs).then_some(r.name),
                time_ratio: s.paired_ratio(r),
                target: s.target,
            }
        })
        .collect()
}

/// The markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| case | variant | median | spread | vs | ratio | target | met |\n\
         |---|---|---:|---:|---|---:|---|---|\n",
    );
    for row in rows {
        let (vs, ratio) = match row.reference {
            None => ("(reference)".to_string(), "1.00×".to_string()),
            Some(name) => (name.to_string(), format!("{:.2}×", row.ratio())),
        };
        let target = match row.target {
            None => "—".to_string(),
            Some(Target::AtMost(x)) => format!("≤ {x:.2}×"),
            Some(Target::AtLeast(x)) => format!("≥ {x:.2}×"),
        };
        let met = match row.met() {
            None => "",
            Some(true) => "yes",
            Some(false) => "**no**",
        };
        out += &format!(
            "| {} | {} | {} | ±{:.0}% | {} | {} | {} | {} |\n",
            row.case,
            row.variant,
            row.value(),
            row.spread * 100.0,
            vs,
            ratio,
            target,
            met
        );
    }
    out
}
