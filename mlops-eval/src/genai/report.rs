//! Evaluation reports: Markdown and HTML with SVG plots.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use polars::prelude::DataType;

use super::compare::{PairedComparison, PairwiseResults};
use super::gate::{GateReport, GateStatus};
use super::plots::{self, MeanWithInterval};
use super::results::{GenAiResults, MetricKind};
use crate::error::{Error, Result};
use crate::text::{TextMetric, token_count};

/// The files a report wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFiles {
    /// `report.md`.
    pub markdown: PathBuf,
    /// `report.html`, the same content with the plots inline.
    pub html: PathBuf,
    /// The SVG plots.
    pub plots: Vec<PathBuf>,
}

/// A report on one run, or on several side by side (the first is the baseline of the
/// comparisons).
///
/// ```no_run
/// # fn run(baseline: &mlops_eval::genai::GenAiResults, candidate: &mlops_eval::genai::GenAiResults)
/// # -> mlops_eval::Result<()> {
/// use mlops_eval::genai::{Report, compare_runs};
/// use mlops_eval::stats::Bootstrap;
///
/// let files = Report::new("Assistant v2 against v1")
///     .run(baseline)
///     .run(candidate)
///     .comparison(compare_runs(baseline, candidate, "answer_correctness", Bootstrap::default())?)
///     .write(std::path::Path::new("eval-report"))?;
/// println!("{}", files.html.display());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Report<'a> {
    title: String,
    runs: Vec<&'a GenAiResults>,
    comparisons: Vec<PairedComparison>,
    pairwise: Option<&'a PairwiseResults>,
    gate: Option<&'a GateReport>,
}

fn number(value: Option<f64>) -> String {
    value.map(|v| format!("{v:.3}")).unwrap_or_else(|| "–".into())
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

impl<'a> Report<'a> {
    /// An empty report titled `title`.
    pub fn new(title: impl Into<String>) -> Self {
        Self { title: title.into(), runs: Vec::new(), comparisons: Vec::new(), pairwise: None, gate: None }
    }

    /// Adds a run (shown in the order added).
    #[must_use]
    pub fn run(mut self, run: &'a GenAiResults) -> Self {
        self.runs.push(run);
        self
    }

    /// Adds a paired comparison.
    #[must_use]
    pub fn comparison(mut self, comparison: PairedComparison) -> Self {
        self.comparisons.push(comparison);
        self
    }

    /// Adds pairwise-judging results.
    #[must_use]
    pub fn pairwise(mut self, pairwise: &'a PairwiseResults) -> Self {
        self.pairwise = Some(pairwise);
        self
    }

    /// Adds the promotion gate's decision.
    #[must_use]
    pub fn gate(mut self, gate: &'a GateReport) -> Self {
        self.gate = Some(gate);
        self
    }

    /// The report as Markdown; plots are referenced as `<name>.svg` beside it.
    pub fn markdown(&self, plots: &[PathBuf]) -> String {
        let mut out = format!("# {}\n\n", self.title);
        for run in &self.runs {
            let s = &run.summary;
            let _ = writeln!(
                out,
                "## {}\n\n{} questions, {} model errors, {:.1} s; answer latency p90 {} ms; judge calls {}, \
                 {} tokens, cost {:.4}.\n",
                s.model,
                s.rows,
                s.model_errors,
                s.duration_secs,
                number(s.answer_latency_ms.p90),
                s.judge_usage.calls,
                s.judge_usage.usage.total(),
                s.judge_usage.cost,
            );
            out.push_str("| metric | mean | 95% interval | variance | p90 | scored | unscored | kappa |\n");
            out.push_str("|---|---:|---|---:|---:|---:|---:|---:|\n");
            for m in &s.metrics {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} – {} | {} | {} | {} | {} | {} |",
                    cell(&m.name),
                    number(m.summary.mean),
                    number(m.summary.ci_low),
                    number(m.summary.ci_high),
                    number(m.summary.variance),
                    number(m.summary.p90),
                    m.scored,
                    m.unscored,
                    number(m.kappa),
                );
            }
            out.push('\n');
        }
        if !self.comparisons.is_empty() {
            out.push_str("## Paired comparison\n\n");
            out.push_str("| metric | baseline | candidate | pairs | mean difference | 95% interval | higher / lower / equal | Wilcoxon p | rank-biserial |\n");
            out.push_str("|---|---|---|---:|---:|---|---|---:|---:|\n");
            for c in &self.comparisons {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} – {} | {} / {} / {} | {} | {} |",
                    cell(&c.metric),
                    cell(&c.baseline),
                    cell(&c.candidate),
                    c.pairs,
                    number(c.mean_difference),
                    number(c.ci_low),
                    number(c.ci_high),
                    c.candidate_higher,
                    c.baseline_higher,
                    c.equal,
                    c.test.map(|t| format!("{:.4}", t.p_value)).unwrap_or_else(|| "–".into()),
                    number(c.test.map(|t| t.rank_biserial)),
                );
            }
            out.push('\n');
        }
        if let Some(p) = self.pairwise {
            let _ = writeln!(
                out,
                "## Pairwise judging (both orders)\n\nCandidate wins {}, baseline wins {}, ties {} ({} where the two \
                 orders disagreed), unscored {}. Candidate win rate {} (95% interval {} – {}).\n",
                p.candidate_wins,
                p.baseline_wins,
                p.ties,
                p.inconsistent,
                p.unscored,
                number(p.candidate_win_rate),
                number(p.ci_low),
                number(p.ci_high),
            );
        }
        if let Some(gate) = self.gate {
            let status = match gate.status {
                GateStatus::Passed => "passed",
                GateStatus::Failed => "failed",
                GateStatus::Incomplete => "incomplete",
            };
            let _ = writeln!(out, "## Promotion gate: {status}\n");
            for check in &gate.checks {
                let verdict = match check.passed {
                    Some(true) => "pass",
                    Some(false) => "fail",
                    None => "cannot decide",
                };
                let _ = writeln!(
                    out,
                    "- {}: {verdict} (observed {}, bound {}){}",
                    check.threshold,
                    number(check.observed),
                    number(check.required),
                    check.reason.as_ref().map(|r| format!(" — {r}")).unwrap_or_default()
                );
            }
            if let Some((alias, version)) = &gate.moved {
                let _ = writeln!(out, "\n`{alias}` now points at version {version}.");
            }
            out.push('\n');
        }
        if !plots.is_empty() {
            out.push_str("## Plots\n\n");
            for plot in plots {
                let name = plot.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let _ = writeln!(out, "![{name}]({name})\n");
            }
        }
        out
    }

    /// Writes `report.md`, `report.html` and the SVG plots into `dir` (created when
    /// missing): a score distribution per metric, the answers' token counts, and the judge
    /// metrics' means with their intervals, each with the runs side by side.
    ///
    /// # Errors
    /// [`Error::Report`] when a plot fails, I/O errors naming the file.
    pub fn write(&self, dir: &Path) -> Result<ReportFiles> {
        let io = |operation, path: &Path, source| {
            Error::Core(mlops_core::Error::Io { operation, path: path.into(), source })
        };
        std::fs::create_dir_all(dir).map_err(|e| io("creating", dir, e))?;
        let mut written = Vec::new();
        let mut metric_names: Vec<(String, String, MetricKind)> = Vec::new();
        for run in &self.runs {
            for m in &run.summary.metrics {
                if !metric_names.iter().any(|(name, _, _)| *name == m.name) {
                    metric_names.push((m.name.clone(), m.column.clone(), m.kind));
                }
            }
        }
        // Token counts get their own plot below.
        for (name, column, _) in metric_names.iter().filter(|(name, _, _)| name != TextMetric::TokenCount.name()) {
            let series = self
                .runs
                .iter()
                .map(|run| Ok((run.summary.model.clone(), column_values(run, column)?)))
                .collect::<Result<Vec<_>>>()?;
            let path = dir.join(format!("scores-{name}.svg"));
            if plots::histogram(&path, &format!("{name}: score distribution"), name, &series)? {
                written.push(path);
            }
        }
        let token_series = self
            .runs
            .iter()
            .map(|run| Ok((run.summary.model.clone(), answer_tokens(run)?)))
            .collect::<Result<Vec<_>>>()?;
        let path = dir.join("token-count.svg");
        if plots::histogram(&path, "answer length (cl100k_base tokens)", "tokens", &token_series)? {
            written.push(path);
        }
        let judged: Vec<String> =
            metric_names.iter().filter(|(_, _, kind)| *kind == MetricKind::Judge).map(|(n, _, _)| n.clone()).collect();
        if !judged.is_empty() {
            let series: Vec<(String, Vec<MeanWithInterval>)> = self
                .runs
                .iter()
                .map(|run| {
                    let values = judged
                        .iter()
                        .map(|name| {
                            let s = run.metric(name).map(|m| m.summary);
                            let mean = s.and_then(|s| s.mean).unwrap_or(f64::NAN);
                            let low = s.and_then(|s| s.ci_low).unwrap_or(mean);
                            let high = s.and_then(|s| s.ci_high).unwrap_or(mean);
                            MeanWithInterval { mean, low, high }
                        })
                        .collect();
                    (run.summary.model.clone(), values)
                })
                .collect();
            let path = dir.join("judge-means.svg");
            plots::means(&path, "judge metrics by version", &judged, &series, (0.0, 5.5))?;
            written.push(path);
        }
        let markdown = self.markdown(&written);
        let markdown_path = dir.join("report.md");
        std::fs::write(&markdown_path, &markdown).map_err(|e| io("writing", &markdown_path, e))?;
        let mut body = String::new();
        let parser = pulldown_cmark::Parser::new_ext(&markdown, pulldown_cmark::Options::ENABLE_TABLES);
        pulldown_cmark::html::push_html(&mut body, parser);
        let html = format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{}</title><style>\
             body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse}}\
             td,th{{border:1px solid #ccc;padding:.3em .6em}}img{{max-width:100%}}</style></head>\n<body>\n{body}</body></html>\n",
            pulldown_cmark_escape_title(&self.title)
        );
        let html_path = dir.join("report.html");
        std::fs::write(&html_path, html).map_err(|e| io("writing", &html_path, e))?;
        Ok(ReportFiles { markdown: markdown_path, html: html_path, plots: written })
    }
}

fn pulldown_cmark_escape_title(title: &str) -> String {
    title.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

fn column_values(run: &GenAiResults, column: &str) -> Result<Vec<f64>> {
    let values = run.rows.column(column)?.cast(&DataType::Float64)?;
    Ok(values.f64()?.iter().flatten().collect())
}

/// The answers' token counts: the `token_count` column when the run has it, counted here
/// otherwise.
fn answer_tokens(run: &GenAiResults) -> Result<Vec<f64>> {
    if run.metric(TextMetric::TokenCount.name()).is_some() {
        return column_values(run, TextMetric::TokenCount.name());
    }
    Ok(run.rows.column("answer")?.str()?.iter().flatten().map(|a| token_count(a) as f64).collect())
}
