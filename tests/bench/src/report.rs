//! What a bench run writes: one JSON fragment per phase (the mesh at one
//! sampling ratio, the services without Envoy, ...), merged into
//! `docs/benchmarks.json` and `docs/benchmarks.md` by
//! `scripts/bench-report.py`.

use std::path::Path;

use serde::Serialize;

use crate::load::Outcome;

/// One figure, beside its target and the baseline measured in the same run.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: String,
    pub metric: String,
    pub measured: f64,
    pub unit: String,
    /// E.g. `>= 1000` or `< 50`; `None` for a figure only reported.
    pub target: Option<String>,
    pub baseline: Option<f64>,
    /// What the baseline is (e.g. "raw bcrypt verify, 2 threads").
    pub baseline_of: Option<String>,
    pub note: String,
}

/// Latency percentiles against offered load: one line of the plot.
#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub label: String,
    pub points: Vec<Outcome>,
}

#[derive(Debug, Default, Serialize)]
pub struct Fragment {
    pub phase: String,
    pub rows: Vec<Row>,
    pub series: Vec<Series>,
    /// Every run, for the record.
    pub runs: Vec<(String, Outcome)>,
}

impl Fragment {
    pub fn new(phase: &str) -> Self {
        Self {
            phase: phase.into(),
            ..Self::default()
        }
    }

    /// Records a run and prints its line.
    pub fn run(&mut self, name: &str, outcome: &Outcome) {
        println!("  {}", outcome.line(name));
        self.runs.push((name.into(), outcome.clone()));
    }

    pub fn row(&mut self, scenario: &str, metric: &str, measured: f64, unit: &str) -> &mut Row {
        self.rows.push(Row {
            scenario: scenario.into(),
            metric: metric.into(),
            measured,
            unit: unit.into(),
            target: None,
            baseline: None,
            baseline_of: None,
            note: String::new(),
        });
        self.rows.last_mut().expect("just pushed")
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, serde_json::to_vec_pretty(self)?)?;
        println!("figures written to {}", path.display());
        Ok(())
    }
}

impl Row {
    pub fn target(&mut self, target: &str) -> &mut Self {
        self.target = Some(target.into());
        self
    }

    pub fn baseline(&mut self, value: f64, of: &str) -> &mut Self {
        self.baseline = Some(value);
        self.baseline_of = Some(of.into());
        self
    }

    pub fn note(&mut self, note: impl Into<String>) -> &mut Self {
        self.note = note.into();
        self
    }
}
